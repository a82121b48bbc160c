"""Each failure class produced by a real client, recorded with that class, and shown to the test
that expects the client's address: through GET /api/v1/tests/{id}/sessions and through
`mxlens check`, which times out printing them and writes a JUnit <error> case."""
import json
from collections import Counter
import os
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import tlsraw
from harness import DOMAIN, MXLENS, ServerCase, starttls_socket, starttls_then

SENDER = "127.0.0.9"


def s_client(port, source, *options):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-bind",
                           f"{source}:0", "-starttls", "smtp", "-name", "client.example", *options],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


class FailureClasses(ServerCase):
    server_args = ("--tls-handshake-timeout", "1")

    def post(self, body):
        req = urllib.request.Request(self.server.url + "/api/v1/tests", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.load(res)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def sessions(self, tid):
        with urllib.request.urlopen(f"{self.server.url}/api/v1/tests/{tid}/sessions", timeout=30) as res:
            return json.load(res)

    def test_claims_are_narrow(self):
        for bad in (["10.0.0.0/16"], ["2001:db8::/48"], ["not an address"], "127.0.0.1",
                    ["127.0.0.1"] * 5):
            status, body = self.post({"expect_from": bad})
            self.assertEqual(400, status, bad)
            self.assertEqual("bad_field", body["error"]["code"])
        status, body = self.post({"expect_from": ["192.0.2.77/24", "2001:db8::1"]})
        self.assertEqual(201, status)
        self.assertEqual(["192.0.2.0/24", "2001:db8::1/128"], body["expect_from"])

    def test_each_class_from_a_real_client_reaches_the_test_that_expects_it(self):
        status, test = self.post({"expect_from": [SENDER]})
        self.assertEqual(201, status)
        port = self.server.port
        made = {}
        # Clear text after "220 Ready to start TLS".
        starttls_then(port, SENDER, b"EHLO client.example\r\n")
        made["plaintext_after_starttls"] = 1
        # An HTTP request where TLS belongs.
        starttls_then(port, SENDER, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        made["not_tls"] = 1
        # Half a ClientHello, then the client goes.
        starttls_then(port, SENDER, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", wait_close=False)
        made["aborted"] = 1
        # A suite this server does not have (it never does NULL encryption).
        out = s_client(port, SENDER, "-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0")
        self.assertNotEqual(0, out.returncode)
        # A client left with no suite at all (aNULL is below OpenSSL's default security level): it
        # sends an alert where its ClientHello belongs.
        out = s_client(port, SENDER, "-tls1_2", "-cipher", "aNULL")
        self.assertIn(b"no ciphers available", out.stderr)
        made["cipher"] = 2
        # Only SSL 3.0 offered, which no server should accept (RFC 7568).
        starttls_then(port, SENDER, tlsraw.client_hello(version=0x0300))
        made["version"] = 1
        # A ClientHello whose extensions overrun it.
        starttls_then(port, SENDER, tlsraw.client_hello(broken_length=True))
        made["protocol"] = 1
        # A ClientHello, and nothing more until the handshake's time is up.
        started = time.time()
        starttls_then(port, SENDER, tlsraw.client_hello()[:30])
        self.assertLess(time.time() - started, 5)
        made["timeout"] = 1
        # A client that checks the certificate and refuses the self-signed one.
        with tempfile.TemporaryDirectory() as tmp:
            ca = os.path.join(tmp, "empty.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            os.path.join(tmp, "k"), "-out", ca, "-subj", "/CN=other", "-days", "1"],
                           check=True, capture_output=True)
            out = s_client(port, SENDER, "-verify_return_error", "-CAfile", ca)
            self.assertNotEqual(0, out.returncode)
            # Python's ssl checks the certificate inside TLS 1.3 (its alert is encrypted).
            ctx = ssl.create_default_context(cafile=ca)
            with starttls_socket(port, SENDER) as sock:
                with self.assertRaises(ssl.SSLCertVerificationError):
                    ctx.wrap_socket(sock, server_hostname=DOMAIN)
        # A stack that leaves after the certificate without a word.
        with starttls_socket(port, SENDER) as sock:
            sock.sendall(tlsraw.client_hello())
            self.assertTrue(sock.recv(65536).startswith(b"\x16\x03\x03"))  # its flight
        made["certificate_rejected"] = 3
        # A TLS client on the STARTTLS port.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(SENDER, 0)) as sock:
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(sock, server_hostname="mx.test.example")
        made["implicit_tls"] = 1
        # Someone else's session is not shown.
        starttls_then(port, "127.0.0.10", b"EHLO other.example\r\n")

        deadline = time.time() + 15
        while time.time() < deadline:
            seen = self.sessions(test["id"])["sessions"]
            if len(seen) >= sum(made.values()):
                break
            time.sleep(0.2)
        classes = Counter(s["failed_handshakes"][-1]["class"] for s in seen if s["failed_handshakes"])
        self.assertEqual(made, classes, seen)
        reasons = {s["failed_handshakes"][-1]["reason"] for s in seen}
        for said in ("the client sent alert internal_error instead of a ClientHello: it had no "
                     "cipher suite",
                     "the client sent alert unknown_ca after this server's certificate",
                     "the client left after this server's certificate without answering it",
                     "handshake timed out before a whole ClientHello"):
            self.assertTrue(any(said in r for r in reasons), (said, reasons))
        self.assertTrue(all(s["client_ip"] == SENDER for s in seen))
        for s in seen:
            self.assertNotIn("transcript", s)
        implicit = next(s for s in seen if s["failed_handshakes"][-1]["class"] == "implicit_tls")
        self.assertEqual("implicit_tls", implicit["outcome"])

        # A client that completes TLS and leaves without MAIL (OpenSSL's s_client at the end of
        # its input): likely a refused certificate, stated as such.
        out = s_client(port, SENDER)
        self.assertIn(b"BEGIN CERTIFICATE", out.stdout)
        deadline = time.time() + 15
        while time.time() < deadline:
            newest = self.sessions(test["id"])["sessions"][0]
            if newest["tls"]["used"]:
                break
            time.sleep(0.2)
        last = newest["failed_handshakes"][-1]
        self.assertEqual("certificate_rejected", last["class"])
        self.assertIn("probably rejected the certificate", last["reason"])

        # `mxlens check` on a time-out says what the expected sender did, and writes JUnit.
        with tempfile.TemporaryDirectory() as tmp:
            junit = os.path.join(tmp, "junit.xml")
            out = subprocess.run([MXLENS, "check", test["address"], "--server", self.server.url,
                                  "--min-score", "8", "--timeout", "1", "--junit", junit],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(2, out.returncode)
            self.assertIn("a client from 127.0.0.9", out.stderr)
            self.assertIn("it refused this server's certificate", out.stderr)
            self.assertIn("probably rejected the certificate", out.stderr)
            self.assertIn("plaintext_after_starttls", out.stderr)
            error = ET.parse(junit).getroot().find("testsuite/testcase/error")
            self.assertIsNotNone(error)
            self.assertIn("127.0.0.9", error.get("message"))

    def test_check_help_and_impossible_requirements(self):
        for cmd in (["check", "--help"], ["wait", "--help"]):
            out = subprocess.run([MXLENS, *cmd], capture_output=True, text=True, timeout=30)
            self.assertEqual(0, out.returncode, out.stderr)
            self.assertIn("--timeout", out.stdout)
        for req in ("dmarc=passs", "tls.used=yes", "check:tls.fallback=passed"):
            out = subprocess.run([MXLENS, "check", "abcdefgh", "--server", self.server.url,
                                  "--require", req], capture_output=True, text=True, timeout=30)
            self.assertEqual(2, out.returncode, req)
            self.assertIn("is not one of", out.stderr)


class AnonymousSuites(ServerCase):
    def test_an_authenticated_suite_is_chosen_when_the_client_offers_one(self):
        out = s_client(self.server.port, "127.0.0.11", "-tls1_2", "-cipher", "aNULL:ALL:@SECLEVEL=0")
        text = out.stdout.decode(errors="replace")
        self.assertIn("Cipher is", text)
        cipher = text.split("Cipher is ", 1)[1].split()[0]
        self.assertFalse(cipher.startswith(("ADH-", "AECDH-")), cipher)
        only = s_client(self.server.port, "127.0.0.11", "-tls1_2", "-cipher", "aNULL:@SECLEVEL=0")
        # A client offering only anonymous suites gets one (and is graded for it).
        self.assertRegex(only.stdout.decode(errors="replace"), r"Cipher is (ADH|AECDH)-")


if __name__ == "__main__":
    unittest.main()
