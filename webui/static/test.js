// "/t/{id}": the test's newest deliveries as they arrive, and the per-source table.
import { el, api, showError, location_parts, scoreText } from "/static/common.js";

const { id } = location_parts();
const $ = (name) => document.getElementById(name);
const percent = (x) => `${Math.round(x * 1000) / 10}%`;
const shown = 200;  // the newest deliveries listed; the sources table counts them all

async function refresh() {
  const test = await api(`/api/v1/tests/${id}?order=desc&limit=${shown}`);
  $("address").textContent = test.address;
  $("meta").textContent = `created ${test.created_at}, kept until ${test.expires_at}${test.label ? ` — ${test.label}` : ""}`;
  const rows = test.deliveries.map((d) =>
    el("tr", {},
       el("td", {}, el("a", { href: `/t/${id}/d/${d.delivery}` }, String(d.delivery))),
       el("td", {}, d.received_at), el("td", {}, d.client_ip), el("td", {}, d.mail_from || "<>"),
       el("td", {}, d.tls ?? "plaintext"), el("td", { class: "score", title: d.score?.unscored ?? undefined }, d.score ? scoreText(d.score, "") : "—"),
       el("td", {}, d.disposition ? String(d.disposition.code) : "—")));
  $("deliveries").tBodies[0].replaceChildren(...rows);
  $("deliveries").hidden = rows.length === 0;
  $("empty").hidden = rows.length !== 0;
  $("count").hidden = !test.more;
  $("count").textContent = `The newest ${rows.length} of ${test.delivery_count.toLocaleString("en")} deliveries.`;
  const sources = test.sources.map((s) =>
    el("tr", {},
       el("td", {}, s.client_ip), el("td", {}, String(s.deliveries)), el("td", {}, percent(s.tls_share)),
       el("td", {}, el("span", { class: `level-${s.plaintext_level}` }, `${percent(s.plaintext_share)} (${s.plaintext_level})`)),
       el("td", {}, Object.entries(s.tls_versions).map(([v, n]) => `${v}: ${n}`).join(", ") || "—"),
       el("td", {}, percent(s.spf_pass_share)), el("td", {}, percent(s.dkim_pass_share)),
       el("td", {}, percent(s.dmarc_pass_share)), el("td", {}, String(s.failed_handshakes))));
  $("sources").tBodies[0].replaceChildren(...sources);
  $("sources").hidden = sources.length === 0;
  claims = test.expect_from || [];
  return test.deliveries.length ? test.deliveries[0].delivery : 0;
}

// The sessions from the addresses the test expects, failed ones too: a sender that fails TLS or
// refuses the certificate never reaches RCPT, so no delivery shows it.
let claims = [];
function failure(s) {
  const f = s.failed_handshakes.at(-1);
  return f ? [el("strong", { class: "level-incident" }, f.class), `: ${f.reason}`] : "—";
}
async function sessions() {
  if (!claims.length) return;
  const { sessions: list } = await api(`/api/v1/tests/${id}/sessions`);
  $("expected").hidden = false;
  $("claims").textContent = `Mail is expected from ${claims.join(", ")}; every session from there since the test was made, newest first.`;
  const rows = list.map((s) =>
    el("tr", { "data-class": s.failed_handshakes.at(-1)?.class },
       el("td", {}, s.started_at), el("td", {}, s.client_ip), el("td", {}, s.helo || "—"),
       el("td", {}, s.outcome), el("td", {}, s.tls.used ? `${s.tls.version} ${s.tls.cipher}` : "—"),
       el("td", {}, failure(s))));
  $("sessions").tBodies[0].replaceChildren(...rows);
  $("sessions").hidden = rows.length === 0;
  $("no-sessions").hidden = rows.length !== 0;
}
// Sessions end without an event; they are read every few seconds while the page is seen.
const session_poll_ms = 3000;
function poll_sessions() {
  if (!claims.length) return;  // a test's claims never change
  const next = () => setTimeout(poll_sessions, session_poll_ms);
  if (document.visibilityState === "hidden") return next();
  sessions().catch((err) => showError(err.message)).finally(next);
}

// Deliveries can arrive hundreds a second: the page reads the test at most once a second.
let pending = null;
let last = 0;
function soon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    last = Date.now();
    refresh().catch((err) => showError(err.message));
  }, Math.max(0, last + 1000 - Date.now()));
}

// The event stream starts after the newest delivery listed, so that opening the page of a test
// with many deliveries does not replay them all.
refresh().then((newest) => {
  last = Date.now();
  poll_sessions();
  const events = new EventSource(`/api/v1/tests/${id}/events?after=${newest}`);
  events.addEventListener("delivery", soon);
}).catch((err) => showError(err.message));
