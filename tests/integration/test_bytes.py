"""Bytes that are not UTF-8 are data: through every field a sender controls, with real clients,
every report, listing, session list, page and `mxlens check` still works, the raw download is
byte-exact, and what people read shows the bytes escaped (\\xE9), in the finding that names them.
"""
import json
import os
import socket
import ssl
import subprocess
import tempfile
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import tlsraw
from analysis_helpers import message
from harness import MXLENS, ServerCase, smtp, test_id


def lines_until_final(f):
    while True:
        line = f.readline()
        if not line or line[3:4] == b" ":
            return line


def raw_session(port, source, commands, data):
    """A raw SMTP client from `source`: each command's final reply line, in order; `data` is sent
    after the DATA command's 354, then the final dot's reply is the last."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0)) as sock:
        f = sock.makefile("rb")
        lines_until_final(f)
        for c in commands:
            sock.sendall(c + b"\r\n")
            replies.append(lines_until_final(f))
            if c == b"DATA":
                sock.sendall(data + b".\r\n")
                replies.append(lines_until_final(f))
        sock.sendall(b"QUIT\r\n")
        lines_until_final(f)
    return replies


class NonUtf8Bytes(ServerCase):
    def api(self, path):
        with urllib.request.urlopen(self.server.url + path, timeout=30) as res:
            body = res.read()
        body.decode("utf-8")  # strictly: every response is UTF-8
        return res.status, body

    def assert_readable(self, address):
        """Every view of the test works and is valid UTF-8 JSON; returns the report."""
        tid = test_id(address)
        status, body = self.api(f"/api/v1/tests/{tid}")
        self.assertEqual(200, status)
        listing = json.loads(body)
        self.assertEqual(1, listing["delivery_count"])
        status, body = self.api(f"/api/v1/tests/{tid}/deliveries/1")
        report = json.loads(body)
        self.assertEqual(200, self.api(f"/t/{tid}")[0])
        self.assertTrue(self.server.show(tid)["deliveries"])  # `tests show`, decoded strictly
        self.server.sessions()  # `mxlens sessions`, decoded strictly
        with tempfile.TemporaryDirectory() as tmp:
            junit = os.path.join(tmp, "junit.xml")
            out = subprocess.run([MXLENS, "check", address, "--server", self.server.url,
                                  "--min-score", "0", "--junit", junit, "--timeout", "20"],
                                 capture_output=True, timeout=60)
            self.assertEqual(0, out.returncode, out.stderr)
            out.stdout.decode("utf-8")
            ET.parse(junit)
        return report

    def test_a_latin1_subject_is_shown_escaped_and_downloaded_exactly(self):
        address = self.server.new_address()
        msg = message(subject="cafX").replace(b"Subject: cafX", b"Subject: caf\xe9")
        self.assertIn(b"Subject: caf\xe9\r\n", msg)
        with smtp(self.server.port, helo="mail.sender.example", source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [address], msg)
        report = self.assert_readable(address)
        syntax = next(c for c in report["checks"] if c["id"] == "hdr.syntax")
        self.assertIn(syntax["status"], ("warn", "fail"))
        self.assertIn("\\xE9", json.dumps(report["checks"], ensure_ascii=False))
        self.assertEqual(msg, self.server.raw(test_id(address), 1))

    def test_an_ehlo_name_and_a_refused_sender_with_latin1_bytes(self):
        address = self.server.new_address()
        replies = raw_session(self.server.port, "127.0.0.3", [
            b"EHLO caf\xe9.example",
            b"MAIL FROM:<caf\xe9@sender.example>",  # 8-bit without SMTPUTF8: refused, recorded
            b"MAIL FROM:<x@sender.example>",
            b"RCPT TO:<" + address.encode() + b">",
            b"DATA"], message())
        self.assertTrue(replies[0].startswith(b"250"), replies)
        self.assertNotEqual(b"250", replies[1][:3], replies)  # the 8-bit sender is refused
        self.assertEqual(b"250", replies[5][:3], replies)
        report = self.assert_readable(address)
        self.assertEqual("caf\\xE9.example", report["connection"]["helo"])
        helo = next(c for c in report["checks"] if c["id"] == "smtp.helo_name")
        self.assertEqual("fail", helo["status"])
        self.assertIn("caf\\xE9.example", helo["summary"])
        session = self.server.wait_sessions(lambda s: s["id"] == report["session_id"])[0]
        self.assertTrue(any("caf\\xE9@sender.example" in l["line"] for l in session["transcript"]))

    def test_an_sni_that_is_not_utf8_is_recorded_escaped(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        out = subprocess.run(
            [b"openssl", b"s_client", b"-connect", f"127.0.0.1:{self.server.port}".encode(), b"-bind",
             b"127.0.0.4:0", b"-starttls", b"smtp", b"-servername", b"caf\xe9.example"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        self.assertIn(b"BEGIN CERTIFICATE", out.stdout, out.stderr)
        found = self.server.wait_sessions(lambda s: s["connection"]["client_ip"] == "127.0.0.4")
        self.assertTrue(found)
        self.assertEqual("caf\\xE9.example", found[0]["tls"]["sni"])

    def test_a_client_hello_on_the_starttls_port_is_recognised_not_stored_as_commands(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10,
                                      source_address=("127.0.0.8", 0)) as sock:
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(sock, server_hostname="mx.test.example")
        found = self.server.wait_sessions(lambda s: s["connection"]["client_ip"] == "127.0.0.8")
        self.assertTrue(found)
        s = found[0]
        self.assertEqual("implicit_tls", s["outcome"])
        failed = s["tls"]["failed_handshakes"][0]
        self.assertEqual("implicit_tls", failed["class"])
        # Its offer is read, as on the STARTTLS path: Python's ssl offers TLS 1.3.
        offer = failed["client_hello"]
        self.assertEqual("mx.test.example", offer["sni"])
        self.assertIn("TLSv1.3", offer["versions"])
        self.assertTrue(offer["fingerprint"].startswith("t13d"), offer)
        for line in s["transcript"]:
            if line["dir"] == "c":
                self.fail(f"TLS bytes stored as a command: {line['line']!r}")
        # A hand-made ClientHello whose SNI is Latin-1: the offer shows the byte escaped.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10,
                                      source_address=("127.0.0.12", 0)) as sock:
            sock.recv(1024)
            sock.sendall(tlsraw.client_hello(sni=b"caf\xe9.example"))
            self.assertIn(b"554 5.5.1", sock.recv(1024))
        found = self.server.wait_sessions(lambda s: s["connection"]["client_ip"] == "127.0.0.12")
        self.assertEqual("caf\\xE9.example",
                         found[0]["tls"]["failed_handshakes"][0]["client_hello"]["sni"])


if __name__ == "__main__":
    unittest.main()
