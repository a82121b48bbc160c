"""The pipeline client (mxlens new, wait, check) against the real server, mail sent by swaks."""
import json
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import MXLENS, ServerCase


class PipelineClient(ServerCase):
    def mxlens(self, *args, timeout=60):
        return subprocess.run([MXLENS, *args, "--server", self.server.url], capture_output=True,
                              text=True, timeout=timeout)

    def swaks(self, address, *tls):
        out = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.server.port}", "--to", address,
                              "--from", "ci@sender.example", "--helo", "helo.example", *tls],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)

    def new(self, *flags):
        out = self.mxlens("new", *flags)
        self.assertEqual(0, out.returncode, out.stderr)
        return out.stdout.strip()

    def test_new_wait_check_passes_for_tls13_and_fails_for_plaintext(self):
        address = self.new("--label", "pipeline")
        self.assertRegex(address, r"^[a-z0-9]{16}@mx\.test\.example$")
        self.swaks(address, "--tls", "--tls-protocol", "tlsv1_3")
        waited = self.mxlens("wait", address.split("@")[0], "--timeout", "30")
        self.assertEqual(0, waited.returncode, waited.stderr)
        self.assertEqual("TLSv1.3", json.loads(waited.stdout)["tls"]["version"])

        with tempfile.NamedTemporaryFile(suffix=".xml") as junit:
            ok = self.mxlens("check", address, "--require", "tls.version>=TLSv1.2", "--require",
                             "tls.used=true", "--require", "check:tls.starttls=pass", "--junit", junit.name)
            self.assertEqual(0, ok.returncode, ok.stdout + ok.stderr)
            self.assertIn("ok      tls.version>=TLSv1.2  (TLSv1.3)", ok.stdout)
            suite = ET.parse(junit.name).getroot().find("testsuite")
            self.assertEqual(("3", "0"), (suite.get("tests"), suite.get("failures")))

        plain = self.new()
        self.swaks(plain)
        with tempfile.NamedTemporaryFile(suffix=".xml") as junit:
            failed = self.mxlens("check", plain, "--require", "tls.version>=TLSv1.2", "--require", "dmarc=fail",
                                 "--junit", junit.name)
            self.assertEqual(1, failed.returncode, failed.stdout + failed.stderr)
            self.assertIn("FAILED  tls.version>=TLSv1.2  (is none)", failed.stdout)
            self.assertIn("fix: Enable opportunistic TLS", failed.stdout)
            root = ET.parse(junit.name).getroot()
            cases = root.find("testsuite").findall("testcase")
            self.assertEqual(["tls.version>=TLSv1.2", "dmarc=fail"], [c.get("name") for c in cases])
            self.assertIsNone(cases[1].find("failure"))
            self.assertIsNotNone(cases[0].find("failure"))
            self.assertEqual("1", root.find("testsuite").get("failures"))

        # A provider's verdict that does not hold comes with the reply that provider would give.
        with tempfile.NamedTemporaryFile(suffix=".xml") as junit:
            failed = self.mxlens("check", plain, "--require", "providers.gmail.verdict=accept",
                                 "--junit", junit.name)
            self.assertEqual(1, failed.returncode, failed.stdout + failed.stderr)
            self.assertRegex(failed.stdout, r"FAILED  providers\.gmail\.verdict=accept  \(is (defer|reject)\)")
            self.assertRegex(failed.stdout, r"\n        reply: [45]\d\d[- ][45]\.7\.\d+ ")
            failure = ET.parse(junit.name).getroot().find("testsuite/testcase/failure")
            self.assertRegex(failure.text, r"^[45]\d\d[- ][45]\.7\.\d+ ")
        out = self.mxlens("check", plain, "--require", "providers.gmail.verdict=acept")
        self.assertEqual(2, out.returncode)
        self.assertIn("is not one of accept, defer, reject", out.stderr)

    def test_scores_checks_and_report_paths(self):
        address = self.new()
        self.swaks(address, "--tls")
        out = self.mxlens("check", address, "--min-score", "0", "--require", "check:dns.ptr=pass|fail",
                          "--require", "connection.helo=helo.example", "--require", "dmarc!=pass")
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        out = self.mxlens("check", address, "--require", "score>=10.5")
        self.assertEqual(1, out.returncode, out.stdout)

    def test_usage_errors_and_timeouts_exit_2(self):
        address = self.new()
        for args in (["check", address, "--require", "tls.version>>TLSv1.2x"],
                     ["check", address, "--require", "no operator"],
                     ["check", address, "--require", "check:no.such=pass"],
                     ["check", address, "--require", "spf>=pass"],
                     ["check", address, "--require", "score>=high"],
                     ["check", address],
                     ["wait", address, "--timeout", "1"]):
            with self.subTest(args=args):
                out = self.mxlens(*args)
                self.assertEqual(2, out.returncode, out.stdout + out.stderr)
                self.assertTrue(out.stderr.strip())
        bad = subprocess.run([MXLENS, "new", "--server", "ftp://x"], capture_output=True, text=True)
        self.assertEqual(2, bad.returncode)
        self.assertIn("http://", bad.stderr)

    def test_what_check_prints_from_a_report_cannot_drive_the_terminal(self):
        """A sender's escape sequences (in its TLS SNI, in the message's headers) are shown
        escaped, never sent to the operator's terminal."""
        address = self.new()
        script = (f"EHLO mail.example\nMAIL FROM:<x@sender.example>\nRCPT TO:<{address}>\nDATA\n"
                  "Subject: \x1b]0;owned\x07\x1b[2J\u009b31m\nX-Next: y\n\nbody\n.\n")
        client = subprocess.Popen(
            ["openssl", "s_client", "-quiet", "-crlf", "-connect", f"127.0.0.1:{self.server.port}",
             "-starttls", "smtp", "-servername", "evil\x1b[2J\x07.example"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # s_client reads its input only once TLS is up: the commands, then QUIT after the 250.
        client.stdin.write(script.encode())
        client.stdin.flush()
        waited = self.mxlens("wait", address.split("@")[0], "--timeout", "30")
        self.assertEqual(0, waited.returncode, waited.stderr)
        client.stdin.write(b"QUIT\n")
        client.stdin.close()
        client.wait(timeout=30)
        for requirement, shown in (
                ("tls.sni=x", b"FAILED  tls.sni=x  (is evil\\x1B[2J\\x07.example)"),
                ("headers.text=x", b"(is Subject: \\x1B]0;owned\\x07\\x1B[2J\\u009B31m\\x0D\\x0AX-Next: y)")):
            out = subprocess.run([MXLENS, "check", address, "--server", self.server.url,
                                  "--require", requirement], capture_output=True, timeout=60)
            self.assertEqual(1, out.returncode, out.stdout + out.stderr)
            for control in (b"\x1b", b"\x07", "\u009b".encode()):
                self.assertNotIn(control, out.stdout + out.stderr)
            self.assertIn(shown, out.stdout)  # one value is one line


if __name__ == "__main__":
    unittest.main()
