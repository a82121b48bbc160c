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

import dnsd
import tlsraw
from analysis_helpers import message, sign
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


# Records in tests/dns/zones.conf with bytes that are not UTF-8 (or, for a byte order mark, UTF-8
# but no part of the record's ASCII grammar). Each is met by a real message: MAIL FROM and From
# name the domain, and a DKIM signature of dkimpy's names the selector. The results are the RFCs':
# - SPF (RFC 7208): its record grammar (§4.6.1, §12) is ASCII, so a record with another byte is a
#   syntax error, a permerror (§4.6); a record that does not begin with "v=spf1" is no SPF record
#   at all (§4.5), so a BOM before it leaves the domain without one: none.
# - DKIM (RFC 6376): a key record's tag-list (§3.2, §3.6.1) is ASCII; one that does not parse is
#   a PERMFAIL, key syntax error (§6.1.2), reported as permerror (RFC 8601 §2.7.1).
# - DMARC (RFC 7489 §6.6.3): a record that does not begin with v=DMARC1 is discarded (step 2), so
#   a BOM before it leaves no record: none. A record whose p= is not valid and that has no valid
#   rua= gets no DMARC processing (step 6.2), so no policy applies to the message; it is the
#   permerror §11.2 registers for "a syntactically incorrect DMARC record". With a valid rua= the
#   receiver acts as if p=none were published (step 6.1). A rua= address with such a byte is no
#   URI (§6.4, RFC 3986) and is ignored (§6.3), the policy standing.
# `shown` is how the finding of `check` names the bytes.
SIGNING_KEY = os.path.join(dnsd.KEYS, "rsa2048.pem")
RECORD_CASES = [
    # name, DNS name, bytes in its record, MAIL FROM, From, DKIM selector, auth part,
    # its expected fields, check, its status, shown
    ("spf: a BOM before v=spf1", "spfbom.example", b"\xef\xbb\xbf", "x@spfbom.example",
     "a@sender.example", "rsa2048", "spf", {"result": "none", "record": None},
     "spf.record", "fail", r"\xEF\xBB\xBF"),
    ("spf: \\x80 in a domain-spec", "spf80.example", b"\x80", "x@spf80.example",
     "a@sender.example", "rsa2048", "spf", {"result": "permerror"}, "spf.record", "fail",
     r"a:mail\x80.spf80.example"),
    ("spf: a Windows-1252 dash for -all's -", "spf96.example", b"\x96", "x@spf96.example",
     "a@sender.example", "rsa2048", "spf", {"result": "permerror"}, "spf.record", "fail",
     r"\x96all"),
    ("dkim: \\x80 inside p=", "bytes80._domainkey.sender.example", b"\x80", "x@sender.example",
     "a@sender.example", "bytes80", "dkim", {"result": "permerror"}, "dkim.valid", "fail",
     r"p=...CgKCAQEAmTPypfPx\x80Tf+WOGoAHi+Tc0rr..."),
    ("dkim: a Windows-1252 dash in n=", "bytes96._domainkey.sender.example", b"\x96",
     "x@sender.example", "a@sender.example", "bytes96", "dkim", {"result": "permerror"},
     "dkim.valid", "fail", r"n=rotated 2026 \x96 ask postmaster"),
    ("dkim: a BOM before v=DKIM1", "bytesbom._domainkey.sender.example", b"\xef\xbb\xbf",
     "x@sender.example", "a@sender.example", "bytesbom", "dkim", {"result": "permerror"},
     "dkim.valid", "fail", r"\xEF\xBB\xBFv=DKIM1"),
    ("dmarc: a BOM before v=DMARC1", "_dmarc.dmarcbom.example", b"\xef\xbb\xbf",
     "x@dmarcbom.example", "a@dmarcbom.example", "rsa2048", "dmarc",
     {"result": "none", "record": None, "applied_policy": None}, "dmarc.record", "fail",
     r"\xEF\xBB\xBF"),
    ("dmarc: \\x80 inside p=, no rua=", "_dmarc.dmarc80.example", b"\x80", "x@dmarc80.example",
     "a@dmarc80.example", "rsa2048", "dmarc",
     {"result": "permerror", "record": None, "applied_policy": None}, "dmarc.record", "fail",
     r"p=rej\x80ect"),
    ("dmarc: a Windows-1252 dash after p=quarantine, with rua=", "_dmarc.dmarc96.example",
     b"\x96", "x@dmarc96.example", "a@dmarc96.example", "rsa2048", "dmarc",
     {"result": "pass", "policy": "none", "applied_policy": "none"}, "dmarc.record", "pass",
     r"p=quarantine\x96"),
    ("dmarc: a Windows-1252 dash in the rua= address", "_dmarc.dmarcrua.example", b"\x96",
     "x@dmarcrua.example", "a@dmarcrua.example", "rsa2048", "dmarc",
     {"result": "pass", "policy": "reject", "rua": []}, "dmarc.record", "pass",
     r"mailto:dmarc\x96reports@dmarcrua.example"),
]


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
        self.assertEqual(200, self.api(f"/t/{tid}/d/1")[0])
        status, body = self.api(f"/api/v1/tests/{tid}/wait?after=0&timeout=5")
        self.assertEqual((200, report), (status, json.loads(body)))
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

    def test_spf_dkim_and_dmarc_records_with_bytes_that_are_not_utf8(self):
        for (name, dns_name, raw, mail_from, sender, selector, part, expected, check_id, status,
             shown) in RECORD_CASES:
            with self.subTest(name):
                # The bytes are on the wire as the zone has them, not re-encoded by dnsmasq.
                records = [b"".join(r) for r in dnsd.shared().txt(dns_name)]
                self.assertTrue(any(raw in r for r in records), records)
                address = self.server.new_address()
                msg = sign(message(sender=sender, subject=name), selector, key=SIGNING_KEY)
                with smtp(self.server.port, helo="mail.sender.example", source="127.0.0.2") as s:
                    s.sendmail(mail_from, [address], msg)
                report = self.assert_readable(address)
                got = report["auth"][part]
                got = got[0] if part == "dkim" else got
                self.assertEqual(expected, {k: got.get(k) for k in expected}, got)
                found = next(c for c in report["checks"] if c["id"] == check_id)
                self.assertEqual(status, found["status"], found)
                self.assertIn(shown, found["summary"], found)
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
