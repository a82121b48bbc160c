"""The pages in Debian's headless Chromium, against the real server.

Chromium is driven through Debian's own ChromeDriver (package chromium-driver, built from the same
source as the browser) by Debian's Selenium (python3-selenium): everything comes from Debian 12's
archive, nothing from a registry of its own. The test makes a test on "/", sends a mail with swaks,
sees the report appear without a reload, opens a check's evidence and downloads the raw message; a
message full of markup and script is shown as text and none of it runs. Screenshots go to
$MXLENS_ARTIFACTS (build/artifacts by default).
"""
import base64
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from selenium import webdriver
from selenium.common.exceptions import UnexpectedAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402  (the integration tests' server and DNS server)
import tlsraw  # noqa: E402  (hand-made TLS records)

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.environ.get("MXLENS_ARTIFACTS") or os.path.join(HERE, "..", "..", "build", "artifacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

# A script from a message that ran would set window.__pwned (or open a dialog).
SUBJECT = "<script>window.__pwned=1</script> hello"
FROM = '"<img src=x onerror=window.__pwned=2>" <a@sender.example>'
BODY = '<a href="javascript:window.__pwned=4">click</a><img src=x onerror="window.__pwned=5">'


def browser(profile, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Headless, as root, and quiet: without the background-networking switches Chromium keeps
    # trying to reach hosts outside this machine.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A dialog that opens makes the next command fail with UnexpectedAlertPresentException.
    options.set_capability("unhandledPromptBehavior", "dismiss and notify")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    driver.set_page_load_timeout(30)
    return driver


class Pages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Each resource is cleaned up even when a later one fails to start.
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.tmp = tempfile.TemporaryDirectory(prefix="mxlens-browser-")
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.downloads = os.path.join(cls.tmp.name, "downloads")
        os.makedirs(cls.downloads)
        # The worker's test faults are on: one test makes an analysis fail.
        cls.server = harness.Server("--workers", "1", env={"MXLENS_TEST_FAULTS": "1"})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.driver = browser(os.path.join(cls.tmp.name, "profile"), cls.downloads)
        cls.addClassCleanup(cls.driver.quit)

    def run(self, result=None):
        """On a failure, the server's log follows the test's output."""
        failures = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            print("server log:\n" + self.server.log(), file=sys.stderr)
        return out

    # Helpers, in the terms of the page.
    def shot(self, name, full=False):
        path = os.path.join(ARTIFACTS, name)
        if not full:
            self.driver.save_screenshot(path)
            return
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def visible(self, css, timeout=30):
        return WebDriverWait(self.driver, timeout).until(
            EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def text(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css).get_attribute("textContent")

    def js(self, script):
        return self.driver.execute_script(script)

    def assert_nothing_ran(self):
        try:
            pwned = self.js("return window.__pwned")
        except UnexpectedAlertPresentException as e:
            self.fail(f"a dialog opened: {e.alert_text}")
        self.assertIsNone(pwned, "a script from the message ran")

    def requests(self, part):
        """The URLs this page fetched that contain `part`."""
        return self.js("return performance.getEntriesByType('resource').map((e) => e.name)"
                       f".filter((u) => u.includes({part!r}))")

    def script_errors(self):
        """Uncaught exceptions and refused scripts in the browser's console."""
        return [e["message"] for e in self.driver.get_log("browser")
                if e["level"] == "SEVERE" and ("Uncaught" in e["message"] or "Refused" in e["message"])]

    def test_a_delivery_from_the_first_click_to_the_report(self):
        d = self.driver
        base = self.server.url

        # 1. "/": one click makes an address.
        d.get(base + "/")
        self.shot("index.png")
        d.find_element(By.CSS_SELECTOR, "#new").click()
        address = WebDriverWait(d, 20).until(lambda _: self.text("#address").strip())
        self.assertRegex(address, r"^[a-z0-9]{16}@mx\.test\.example$")
        test_id = address.split("@")[0]
        self.js("window.__same_page = true")

        # 2. A hostile message, over STARTTLS from 127.0.0.2.
        subprocess.run(["swaks", "--server", f"127.0.0.1:{self.server.port}", "--to", address,
                        "--from", "x@sender.example", "--helo", "helo.example",
                        "--local-interface", "127.0.0.2", "--tls",
                        "--header", f"Subject: {SUBJECT}", "--header", f"From: {FROM}",
                        "--header", "X-Link: javascript:window.__pwned=3", "--body", BODY],
                       check=True, capture_output=True, timeout=60)

        # 3. The report appears on the same page, without a reload.
        self.visible("#score")
        self.assertIs(self.js("return window.__same_page"), True, "the page was reloaded")
        self.assertRegex(self.text("#score"), r"^\d+\.\d/10$")
        self.assertRegex(self.text("#status"), r"Delivery 1 arrived")

        # 4. A check's evidence opens.
        check = d.find_element(By.CSS_SELECTOR, 'details.check[data-id="tls.starttls"]')
        evidence = check.find_element(By.CSS_SELECTOR, "pre.evidence")
        self.assertFalse(evidence.is_displayed())
        check.find_element(By.CSS_SELECTOR, "summary").click()
        self.assertTrue(evidence.is_displayed())
        self.assertRegex(evidence.get_attribute("textContent"), r'"used": true')

        # 5. The markup is text: shown literally, never run.
        headers = self.text("#headers pre")
        self.assertIn(f"Subject: {SUBJECT}", headers)
        self.assertIn("<img src=x onerror=window.__pwned=2>", headers)
        self.assertEqual(d.find_elements(
            By.CSS_SELECTOR, "#report script, #report img, #report a[href^='javascript']"), [])
        self.assert_nothing_ran()
        self.shot("report-live.png", full=True)

        # 6. The raw message downloads as received, under the name the page gives it.
        d.find_element(By.CSS_SELECTOR, "#download").click()
        path = os.path.join(self.downloads, f"{test_id}-1.eml")
        deadline = time.time() + 20
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.listdir(self.downloads), [f"{test_id}-1.eml"])
        with open(path, "rb") as f:
            raw = f.read()
        self.assertIn(f"Subject: {SUBJECT}".encode(), raw)
        self.assertEqual(raw, self.server.raw(test_id, 1))

        # 7. The test page and the report page on their own.
        d.get(f"{base}/t/{test_id}")
        self.visible("#deliveries tbody tr")
        self.assertEqual(self.text("#deliveries tbody tr td:nth-child(3)"), "127.0.0.2")
        self.assertIn("127.0.0.2", self.text("#sources tbody"))
        self.shot("test.png", full=True)
        d.get(f"{base}/t/{test_id}/d/1")
        self.visible("#score")
        self.assertEqual(len(d.find_elements(By.CSS_SELECTOR, "#providers [data-provider]")), 3)
        # The headers come with the report: the message itself is not downloaded to show them.
        self.assertIn(f"Subject: {SUBJECT}", self.text("#headers pre"))
        self.assertEqual(self.requests("/raw"), [])
        self.assertRegex(self.text("#transcript pre"), r"C: EHLO helo\.example")
        self.shot("report.png", full=True)
        self.shot("report-top.png")

        # A phone's screen (its viewport meta honoured) gets the same report, nothing cut off
        # sideways.
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        d.get(f"{base}/t/{test_id}/d/1")
        self.visible("#score")
        # Against the layout viewport: a phone zooms a page out to its content, so innerWidth
        # would grow with the overflow it is meant to catch.
        overflow = self.js("return document.documentElement.scrollWidth"
                           " - document.documentElement.clientWidth")
        self.assertLessEqual(overflow, 1, f"the page is {overflow}px wider than a phone's screen")
        self.shot("report-phone.png", full=True)
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        # 8. An unknown test shows an error, not a broken page.
        d.get(f"{base}/t/aaaaaaaaaaaaaaaa/d/1")
        self.visible("#error")
        self.assertRegex(self.text("#error"), r"\S")
        self.assert_nothing_ran()
        self.assertEqual(self.script_errors(), [])

    def test_the_expected_senders_sessions_appear_live_failed_ones_too(self):
        d = self.driver
        sender = "127.0.0.13"
        test_id = harness.test_id(self.server.new_address("--expect-from", sender))
        d.get(f"{self.server.url}/t/{test_id}")
        self.visible("#no-sessions")
        self.assertIn(sender, self.text("#claims"))
        self.js("window.__same_page = true")

        # A sender that fails TLS and never reaches RCPT, with markup and a Latin-1 byte in its
        # EHLO name, then one that completes TLS; someone else's session stays off the page.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10,
                                      source_address=(sender, 0)) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO <img src=x onerror=window.__pwned=6>caf\xe9\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            sock.sendall(b"STARTTLS\r\n")
            f.readline()
            sock.sendall(b"MAIL FROM:<a@sender.example>\r\n")
            f.read()
        harness.starttls_then(self.server.port, "127.0.0.14", b"EHLO other.example\r\n")
        # More classes, from raw clients: each gets its row.
        harness.starttls_then(self.server.port, sender, b"GET / HTTP/1.1\r\n\r\n")
        harness.starttls_then(self.server.port, sender, tlsraw.client_hello(version=0x0300))
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10,
                                      source_address=(sender, 0)) as sock:
            sock.recv(1024)
            sock.sendall(tlsraw.client_hello())
            sock.recv(1024)
        for kind in ("not_tls", "version", "implicit_tls"):
            self.visible(f'#sessions tbody tr[data-class="{kind}"]', timeout=20)
        row = self.visible('#sessions tbody tr[data-class="plaintext_after_starttls"]', timeout=20)
        self.assertIs(self.js("return window.__same_page"), True, "the page was reloaded")
        cells = [c.get_attribute("textContent") for c in row.find_elements(By.TAG_NAME, "td")]
        self.assertEqual(sender, cells[1])
        self.assertEqual("<img src=x onerror=window.__pwned=6>caf\\xE9", cells[2])
        self.assertEqual("tls_failed", cells[3])
        self.assertRegex(cells[5], r"^plaintext_after_starttls: ")
        self.assertNotIn("127.0.0.14", self.text("#sessions"))
        self.assertEqual(d.find_elements(By.CSS_SELECTOR, "#sessions img, #sessions script"), [])

        subprocess.run(["swaks", "--server", f"127.0.0.1:{self.server.port}", "--quit-after",
                        "EHLO", "--tls", "--local-interface", sender, "--helo", "tls.example"],
                       check=True, capture_output=True, timeout=60)
        WebDriverWait(d, 20).until(lambda _: len(d.find_elements(By.CSS_SELECTOR,
                                                                 "#sessions tbody tr")) == 5)
        newest = d.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")[0]
        self.assertRegex(newest.get_attribute("textContent"), r"tls\.examplequitTLSv1\.3 TLS_")
        self.shot("test-sessions.png", full=True)
        self.assert_nothing_ran()
        self.assertEqual(self.script_errors(), [])

    def test_a_failed_analysis_is_not_analysed_never_a_score(self):
        d = self.driver
        address = self.server.new_address()
        test_id = harness.test_id(address)
        # The analysis's worker crashes: the delivery is stored, its report unscored.
        with harness.smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [address],
                       harness.message("crash", "body", sender="a@sender.example")
                       .replace(b"\r\n\r\n", b"\r\nX-Mxlens-Test-Fault: crash\r\n\r\n", 1))
        d.get(f"{self.server.url}/t/{test_id}/d/1")
        self.visible("#score")
        self.assertEqual("not analysed", self.text("#score"))
        self.assertRegex(self.text("#unscored"),
                         r"^unscored: the analysis failed: analysis worker crashed \(signal 6")
        self.assertNotRegex(self.text("#summary"), r"\d+\.\d/10")
        self.assertIn("not analysed", d.title)
        self.assertIn("X-Mxlens-Test-Fault: crash", self.text("#headers pre"))
        self.assertEqual(self.requests("/raw"), [])
        self.shot("report-unscored.png")
        # The test's listing says so too, with the reason on the cell.
        d.get(f"{self.server.url}/t/{test_id}")
        cell = self.visible("#deliveries tbody tr td.score")
        self.assertEqual("not analysed", cell.get_attribute("textContent"))
        self.assertIn("the analysis failed", cell.get_attribute("title"))
        self.assertEqual(self.script_errors(), [])

    def test_the_arc_chain_and_the_received_chain_are_on_the_report(self):
        import dkim  # dkimpy seals the message as a forwarder would, with the test zone's key
        d = self.driver
        address = self.server.new_address()
        test_id = harness.test_id(address)
        with open(os.path.join(HERE, "..", "dns", "keys", "rsa2048.pem"), "rb") as f:
            key = f.read()
        msg = (b"Authentication-Results: fwd.example; spf=pass smtp.mailfrom=sender.example"
               b" reason=\"<img src=x onerror=window.__pwned=6>\"\r\n"
               b"Received: from relay.example ([192.0.2.20]) by fwd.example with ESMTPS id 2;"
               b" Tue, 3 Dec 2024 10:15:03 +0000\r\n"
               b"Received: from <script>window.__pwned=7</script> ([192.0.2.10]) by relay.example"
               b" with SMTP id 1; Tue, 3 Dec 2024 10:15:02 +0000\r\n"
               + harness.message("sealed", "body", sender="a@sender.example"))
        sealed = b"".join(dkim.arc_sign(msg, b"rsa2048", b"sender.example", key,
                                        b"fwd.example")) + msg
        with harness.smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [address], sealed)
        d.get(f"{self.server.url}/t/{test_id}/d/1")
        self.visible("#score")
        self.assertEqual("cv=pass", self.text("#auth .arc-verdict"))
        row = [c.get_attribute("textContent") for c in d.find_elements(
            By.CSS_SELECTOR, '#auth table.arc-chain tr[data-instance="1"] td')]
        self.assertEqual(["1", "sender.example (s=rsa2048)", "none", "pass", "pass"], row[:5])
        self.assertIn("<img src=x onerror=window.__pwned=6>", row[5])  # shown as text
        hops = [[c.get_attribute("textContent") for c in r.find_elements(By.CSS_SELECTOR, "td")]
                for r in d.find_elements(By.CSS_SELECTOR, "#auth table.received-chain tr")[1:]]
        self.assertEqual(2, len(hops))
        self.assertEqual(["1", "<script>window.__pwned=7</script> ([192.0.2.10])", "relay.example",
                          "SMTP"], hops[0][:4])
        self.assertEqual(["2", "relay.example ([192.0.2.20])", "fwd.example", "ESMTPS"], hops[1][:4])
        self.assert_nothing_ran()
        self.assertEqual(self.script_errors(), [])
        self.shot("report-arc.png", full=True)


if __name__ == "__main__":
    unittest.main()
