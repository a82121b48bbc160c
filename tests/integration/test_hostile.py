"""Hostile messages get a report with findings, never a crash or a hang: many MIME parts, deep
nesting, a 20 MB header line, invalid encoded words, NUL bytes. The timeouts here only catch a
hang; how fast the analysis is belongs to bench/."""
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import threading
import unittest

import dnsd
from harness import MXLENS, ServerCase, message, schema_errors, smtp, test_id

HANG = 120  # seconds: far above any honest analysis


def analyze(msg):
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        f.write(msg)
        f.flush()
        out = subprocess.run([MXLENS, "analyze", f.name, "--client-ip", "127.0.0.2", "--helo",
                              "helo.example", "--mail-from", "x@sender.example", "--dns",
                              dnsd.shared().address], capture_output=True, timeout=HANG)
    if out.returncode != 0:
        raise AssertionError(out.stderr.decode())
    return json.loads(out.stdout)


def status(report, check_id):
    return next(c for c in report["checks"] if c["id"] == check_id)


HEAD = (b"From: a@sender.example\r\nTo: t@mx.test.example\r\nSubject: hostile\r\n"
        b"Date: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <h@sender.example>\r\n")


def many_parts(n):
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(n))
    return (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
            parts + b"--b--\r\n")


def nested(depth):
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i)
                       for i in range(depth))
    closing = b"".join(b"\r\n--n%d--\r\n" % i for i in reversed(range(depth)))
    return HEAD + b"MIME-Version: 1.0\r\n" + opening + b"Content-Type: text/plain\r\n\r\ndeep" + closing


class HostileMessages(unittest.TestCase):
    def test_ten_thousand_mime_parts(self):
        report = analyze(many_parts(10_000))
        self.assertEqual([], schema_errors(report))
        mime = status(report, "hdr.mime")
        self.assertEqual("fail", mime["status"])
        self.assertIn("not inspected", " ".join(mime["evidence"]["problems"]))

    def test_nesting_a_thousand_deep(self):
        report = analyze(nested(1000))
        self.assertEqual([], schema_errors(report))
        self.assertEqual("fail", status(report, "hdr.mime")["status"])

    def test_a_20_mb_header_line(self):
        msg = HEAD + b"X-Huge: " + b"a" * (20 << 20) + b"\r\n\r\nbody\r\n"
        report = analyze(msg)
        self.assertEqual([], schema_errors(report))
        syntax = status(report, "hdr.syntax")
        self.assertEqual("fail", syntax["status"])
        self.assertIn("octets (RFC 5322 limit: 998)", syntax["summary"])

    def test_invalid_encoded_words(self):
        msg = (b"From: =?utf-8?B?not base64?= <a@sender.example>\r\nTo: t@mx.test.example\r\n"
               b"Subject: =?utf-8?Q?unterminated\r\nX-A: =?bogus?X?abc?=\r\n"
               b"Date: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <e@sender.example>\r\n\r\nbody\r\n")
        report = analyze(msg)
        self.assertEqual([], schema_errors(report))
        syntax = status(report, "hdr.syntax")
        self.assertEqual("fail", syntax["status"])
        problems = " ".join(syntax["evidence"]["problems"])
        self.assertIn("encoded word in From", problems)
        self.assertIn("encoded word in Subject is not terminated", problems)
        self.assertIn("unknown encoding", problems)

    def test_nul_bytes_in_header_and_body(self):
        msg = HEAD.replace(b"Subject: hostile", b"Subject: nul\x00here") + b"\r\nbody\x00with\x00nuls\r\n"
        report = analyze(msg)
        self.assertEqual([], schema_errors(report))
        syntax = status(report, "hdr.syntax")
        self.assertEqual("fail", syntax["status"])
        self.assertIn("NUL octet in the header", syntax["evidence"]["problems"])


class HostileOverSmtp(ServerCase):
    """The same through the running server: stored with a report, or refused with a reply."""

    def test_many_parts_are_stored_with_a_report(self):
        address = self.server.new_address()
        with smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [address], many_parts(10_000))
        report = self.server.show(test_id(address))["deliveries"][0]
        self.assertEqual("fail", status(report, "hdr.mime")["status"])
        self.assertEqual([], report["analysis"]["errors"])

    def test_a_20_mb_header_line_is_refused_and_the_session_goes_on(self):
        address = self.server.new_address()
        with smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
            s.ehlo("helo.example")
            s.mail("x@sender.example")
            s.rcpt(address)
            code, text = s.data(HEAD + b"X-Huge: " + b"a" * (20 << 20) + b"\r\n\r\nbody\r\n")
            self.assertEqual((554, b"5.6.0"), (code, text.split(b" ")[0]))
            self.assertEqual(250, s.noop()[0])
        self.assertEqual([], self.server.show(test_id(address))["deliveries"])


def pipelined(port, source, head, flood):
    """A raw client from `source`: sends `head` and waits for its replies (one per line), then
    writes `flood` from another thread while reading every reply until the server closes.
    Returns the reply lines after the head's."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    f = sock.makefile("rb")
    f.readline()
    for line in head:
        sock.sendall(line)
        while f.readline()[3:4] == b"-":
            pass

    def write():
        try:
            sock.sendall(flood)
        except OSError:
            pass  # the server closed while the flood was still coming

    writer = threading.Thread(target=write)
    writer.start()
    replies = []
    try:
        for line in f:
            replies.append(line)
    except OSError:
        pass
    writer.join()
    f.close()
    sock.close()
    return replies


class JunkSessions(ServerCase):
    """A session that only costs: its transcript stays within its budget, in memory and stored,
    and its junk commands end in 421 (Postfix's smtpd_junk_command_limit)."""

    def stored_size(self, session_id):
        with sqlite3.connect(os.path.join(self.server.data_dir, "mxlens.db")) as db:
            return db.execute("SELECT length(CAST(facts AS BLOB)) FROM sessions WHERE id = ?",
                              (session_id,)).fetchone()[0]

    def test_6000_noops_leave_a_session_row_under_100_kib_and_end_in_421(self):
        noop = b"NOOP " + b"x" * 1000 + b"\r\n"
        replies = pipelined(self.server.port, "127.0.0.21", [b"EHLO junk.example\r\n"],
                            noop * 6000)
        self.assertEqual([b"250 2.0.0 OK\r\n"] * 100, replies[:100])
        self.assertEqual(101, len(replies), replies[100:105])
        self.assertTrue(replies[100].startswith(b"421 4.7.0 "), replies[100])
        self.assertIn(b"too many commands", replies[100].lower())
        found = self.server.wait_sessions(lambda s: s["connection"]["client_ip"] == "127.0.0.21")
        self.assertTrue(found)
        session = found[0]
        self.assertEqual("limit", session["outcome"])
        self.assertLess(self.stored_size(session["id"]), 100 * 1024)
        self.assertRegex(session["transcript"][-1]["line"],
                         r"^\(\d+ more transcript lines not kept\)$")
        self.assertEqual("EHLO junk.example", session["transcript"][1]["line"])

    def test_a_delivery_after_a_long_prologue_keeps_its_transaction_within_the_budget(self):
        address = self.server.new_address()
        with smtp(self.server.port, helo="long.example", source="127.0.0.22") as s:
            s.ehlo("long.example")
            for _ in range(99):  # within the junk limit, over the transcript budget
                self.assertEqual(250, s.docmd("NOOP", "y" * 1018)[0])
            s.sendmail("x@sender.example", [address], message("after noops", "body"))
        delivery = self.server.show(test_id(address))["deliveries"][0]
        lines = [t["line"] for t in delivery["transcript"]]
        self.assertLess(len(json.dumps(delivery["transcript"])), 100 * 1024)
        self.assertEqual(lines[1], "ehlo long.example")
        # The prologue is cut where the budget ended; the transaction is whole.
        cut = next(i for i, l in enumerate(lines) if l.endswith("more transcript lines not kept)"))
        self.assertTrue(lines[cut + 1].startswith("mail FROM:<x@sender.example>"), lines[cut:])
        self.assertTrue(any(l.startswith("rcpt TO:") for l in lines[cut:]))
        self.assertRegex(lines[-1], r"^<\d+ bytes>$")


if __name__ == "__main__":
    unittest.main()
