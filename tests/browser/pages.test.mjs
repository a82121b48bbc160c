// The pages in Debian's headless Chromium, driven by Playwright, against the real server:
// make a test on "/", send a mail with swaks, see the report appear without a reload, open a
// check's evidence, download the raw message; a message full of markup and script is shown as
// text and none of it runs. Screenshots go to $MXLENS_ARTIFACTS.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const MXLENS = process.env.MXLENS_BIN || join(here, "../../build/app/mxlens");
const ARTIFACTS = process.env.MXLENS_ARTIFACTS || join(here, "../../build/artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(ARTIFACTS, { recursive: true });

const children = [];
const tmp = mkdtempSync(join(tmpdir(), "mxlens-browser-"));
function cleanup() {
  for (const c of children) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
}
process.on("exit", cleanup);
process.on("uncaughtException", (e) => { console.error(e); cleanup(); process.exit(1); });
process.on("unhandledRejection", (e) => { console.error(e); cleanup(); process.exit(1); });

async function freePort() {
  const s = createSocket("udp4");
  await new Promise((ok) => s.bind(0, "127.0.0.1", ok));
  const port = s.address().port;
  s.close();
  return port;
}

async function until(what, f, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The test DNS server (the zones of the integration tests).
const dnsPort = await freePort();
const dnsArgs = ["--keep-in-foreground", "--no-resolv", "--no-hosts", `--port=${dnsPort}`,
                 "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
                 `--conf-file=${join(here, "../dns/zones.conf")}`, `--log-facility=${join(tmp, "dns.log")}`];
if (process.getuid() === 0) dnsArgs.push("--user=root");
children.push(spawn("dnsmasq", dnsArgs, { stdio: "ignore" }));

// The server, on free loopback ports.
let log = "";
const server = spawn(MXLENS, ["serve", "--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                              "--hostname", "mx.test.example", "--data-dir", join(tmp, "data"),
                              "--dns", `127.0.0.1@${dnsPort}`, "--dns-timeout", "2", "--workers", "1"]);
children.push(server);
server.stdout.on("data", (d) => (log += d));
server.stderr.on("data", (d) => (log += d));
const smtpPort = Number((await until("the SMTP port", () => log.match(/listening smtp 127\.0\.0\.1:(\d+)/)))[1]);
const httpPort = Number((await until("the HTTP port", () => log.match(/listening http 127\.0\.0\.1:(\d+)/)))[1]);
const base = `http://127.0.0.1:${httpPort}`;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const dialogs = [];
const errors = [];
page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
page.on("pageerror", (e) => errors.push(String(e)));

try {
  // 1. "/": one click makes an address.
  await page.goto(base + "/");
  await page.screenshot({ path: join(ARTIFACTS, "index.png") });
  await page.click("#new");
  const address = await until("the address", async () => (await page.textContent("#address"))?.trim());
  assert.match(address, /^[a-z0-9]{16}@mx\.test\.example$/);
  const id = address.split("@")[0];
  await page.evaluate(() => { window.__same_page = true; });

  // 2. A hostile message, over STARTTLS from 127.0.0.2.
  const subject = "<script>window.__pwned=1</script> hello";
  execFileSync("swaks", ["--server", `127.0.0.1:${smtpPort}`, "--to", address, "--from", "x@sender.example",
                         "--helo", "helo.example", "--local-interface", "127.0.0.2", "--tls",
                         "--header", `Subject: ${subject}`,
                         "--header", 'From: "<img src=x onerror=window.__pwned=2>" <a@sender.example>',
                         "--header", "X-Link: javascript:window.__pwned=3",
                         "--body", '<a href="javascript:window.__pwned=4">click</a><img src=x onerror="window.__pwned=5">'],
               { stdio: "ignore" });

  // 3. The report appears on the same page, without a reload.
  await page.waitForSelector("#score", { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.__same_page), true, "the page was reloaded");
  assert.match(await page.textContent("#score"), /^\d+\.\d\/10$/);
  assert.match(await page.textContent("#status"), /Delivery 1 arrived/);

  // 4. A check's evidence opens.
  const check = page.locator('details.check[data-id="tls.starttls"]');
  assert.equal(await check.locator("pre.evidence").isVisible(), false);
  await check.locator("summary").click();
  assert.equal(await check.locator("pre.evidence").isVisible(), true);
  assert.match(await check.locator("pre.evidence").textContent(), /"used": true/);

  // 5. The markup is text: shown literally, never run.
  assert.match(await page.textContent("#headers pre"), /Subject: <script>window\.__pwned=1<\/script> hello/);
  assert.match(await page.textContent("#headers pre"), /<img src=x onerror=window\.__pwned=2>/);
  assert.equal(await page.locator("#report script, #report img, #report a[href^='javascript']").count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "a script from the message ran");
  assert.deepEqual(dialogs, []);
  await page.screenshot({ path: join(ARTIFACTS, "report-live.png"), fullPage: true });

  // 6. The raw message downloads as received.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const raw = readFileSync(await download.path(), "utf8");
  assert.match(raw, /Subject: <script>window\.__pwned=1<\/script> hello/);
  assert.equal(download.suggestedFilename(), `${id}-1.eml`);

  // 7. The test page and the report page on their own.
  await page.goto(`${base}/t/${id}`);
  await page.waitForSelector("#deliveries tbody tr");
  assert.equal(await page.textContent("#deliveries tbody tr td:nth-child(3)"), "127.0.0.2");
  assert.match(await page.textContent("#sources tbody"), /127\.0\.0\.2/);
  await page.screenshot({ path: join(ARTIFACTS, "test.png"), fullPage: true });
  await page.goto(`${base}/t/${id}/d/1`);
  await page.waitForSelector("#score");
  assert.equal(await page.locator("#providers [data-provider]").count(), 3);
  assert.match(await page.textContent("#transcript pre"), /C: EHLO helo\.example/);
  await page.screenshot({ path: join(ARTIFACTS, "report.png"), fullPage: true });
  await page.screenshot({ path: join(ARTIFACTS, "report-top.png") });
  // A phone-sized screen gets the same report, nothing cut off sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow}px wider than a phone screen`);
  await page.screenshot({ path: join(ARTIFACTS, "report-phone.png"), fullPage: true });

  // 8. An unknown test shows an error, not a broken page.
  await page.goto(`${base}/t/aaaaaaaaaaaaaaaa/d/1`);
  await page.waitForSelector("#error:not([hidden])");
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(errors, []);
  console.log("browser: pages ok; screenshots in", ARTIFACTS);
} catch (e) {
  console.error(e);
  console.error("server log:\n" + log);
  process.exitCode = 1;
} finally {
  await browser.close();
  cleanup();  // the server and the DNS server would keep the event loop alive
  process.exit();
}
