"""Deliveries: counted exactly, stored intact, durable across SIGKILL, limits answered properly."""
import os
import random
import smtplib
import socket
import subprocess
import threading
import unittest

from harness import MXLENS, ServerCase, DOMAIN, Server, client_context, message, smtp, test_id


def dialogue(port, lines):
    """Sends each line and returns the replies, one (possibly multi-line) reply per line."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")

    def reply():
        out = []
        while True:
            line = f.readline()
            out.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return b"".join(out)

    greeting = reply()
    replies = [greeting]
    for line in lines:
        sock.sendall(line)
        replies.append(reply())
    f.close()
    sock.close()
    return replies


class Deliveries(ServerCase):
    server_args = ("--max-message-size", "100000")

    def test_two_messages_and_an_rset_in_one_connection_are_exactly_two_deliveries(self):
        address = self.server.new_address()
        c = smtp(self.server.port)
        c.sendmail("a@example.org", [address], message("one", "first"))
        c.mail("a@example.org")
        c.rcpt(address)
        self.assertEqual(c.rset()[0], 250)
        c.sendmail("a@example.org", [address], message("two", "second"))
        c.quit()
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual([d["delivery"] for d in deliveries], [1, 2])
        self.assertIn(b"first", self.server.raw(test_id(address), 1))
        self.assertIn(b"second", self.server.raw(test_id(address), 2))

    def test_concurrent_starttls_clients_deliver_every_message_intact(self):
        address = self.server.new_address()
        sent, errors = {}, []
        lock = threading.Lock()

        def client(k):
            try:
                c = smtp(self.server.port, helo=f"c{k}.example")
                c.starttls(context=client_context())
                c.ehlo(f"c{k}.example")
                for i in range(20):
                    body = "".join(random.choice("abcdefgh .\r\n") for _ in range(2000))
                    body = body.replace("\r", "").replace("\n", "\r\n")  # CRLF lines only
                    raw = message(f"{k}-{i}", body)
                    c.sendmail("a@example.org", [address], raw)
                    with lock:
                        sent[f"{k}-{i}"] = raw
                c.quit()
            except Exception as e:  # reported below, with the client number
                errors.append(f"client {k}: {e!r}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(len(deliveries), 200)
        self.assertTrue(all(d["tls"]["used"] for d in deliveries))
        stored = [self.server.raw(test_id(address), d["delivery"]) for d in deliveries]
        # smtplib dot-stuffs and mxlens unstuffs: what was sent is what is stored, byte for byte.
        self.assertEqual(sorted(stored), sorted(sent.values()))

    def test_bare_lf_dot_never_ends_the_data(self):
        address = self.server.new_address()
        data = (b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@example.org>\r\n"
                b"tail\r\n.\r\n")
        replies = dialogue(self.server.port, [
            b"EHLO x.example\r\n", b"MAIL FROM:<a@example.org>\r\n",
            f"RCPT TO:<{address}>\r\n".encode(), b"DATA\r\n", data, b"QUIT\r\n"])
        self.assertTrue(replies[5].startswith(b"250 2.0.0"), replies)
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(len(deliveries), 1)
        self.assertEqual(deliveries[0]["data"]["bare_lf"], 2)
        self.assertEqual(self.server.raw(test_id(address), 1), data[:-3])

    def test_rcpt_to_another_domain_is_refused_and_nothing_stored(self):
        address = self.server.new_address()
        c = smtp(self.server.port)
        c.ehlo()
        self.assertEqual(c.mail("a@example.org")[0], 250)
        code, text = c.rcpt("victim@elsewhere.example")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith(b"5.7.1"), text)
        code, text = c.rcpt("nosuchtest00@" + DOMAIN)
        self.assertEqual((code, text[:5]), (550, b"5.1.1"))
        self.assertEqual(c.docmd("DATA")[0], 554)  # no valid recipients
        c.quit()
        self.assertEqual(self.server.show(test_id(address))["deliveries"], [])

    def test_a_5000_octet_command_line_is_refused_and_the_session_goes_on(self):
        replies = dialogue(self.server.port, [
            b"EHLO x.example\r\n", b"NOOP " + b"a" * 5000 + b"\r\n", b"NOOP\r\n", b"QUIT\r\n"])
        self.assertTrue(replies[2].startswith(b"500 5.5.2"), replies[2])
        self.assertTrue(replies[3].startswith(b"250 2.0.0"), replies[3])
        self.assertTrue(replies[4].startswith(b"221"), replies[4])

    def test_a_message_over_the_size_limit_is_refused_and_the_session_stays_usable(self):
        address = self.server.new_address()
        c = smtp(self.server.port)
        c.ehlo()
        # No SIZE= declared: the limit is found while reading the data.
        self.assertEqual(c.mail("a@example.org")[0], 250)
        self.assertEqual(c.rcpt(address)[0], 250)
        code, text = c.data(message("big", "x" * 200_000))
        self.assertEqual((code, text[:5]), (552, b"5.3.4"))
        # Declared too big with SIZE=: refused at MAIL already (RFC 1870).
        code, text = c.docmd("MAIL FROM:<a@example.org> SIZE=200000")
        self.assertEqual((code, text[:5]), (552, b"5.3.4"))
        c.sendmail("a@example.org", [address], message("small", "fits"))
        c.quit()
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(len(deliveries), 1)
        self.assertIn(b"fits", self.server.raw(test_id(address), 1))

    def test_envelope_extensions_are_recorded(self):
        address = self.server.new_address()
        tagged = test_id(address) + "+caf\u00e9@" + DOMAIN
        body = "Subject: 8bit\r\n\r\ncaf\u00e9\r\n".encode()
        replies = dialogue(self.server.port, [
            b"EHLO x.example\r\n",
            "MAIL FROM:<a@example.org> RCPT:x\r\n".encode(),
            "RCPT TO:<x>\r\n".encode(),
            "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8 SIZE=100\r\n".encode(),
            f"RCPT TO:<{tagged}>\r\n".encode(), b"DATA\r\n", body + b".\r\n",
            "MAIL FROM:<\u00e9@example.org>\r\n".encode(), b"QUIT\r\n"])
        self.assertTrue(replies[2].startswith(b"501 5.5.4"), replies[2])  # malformed parameter
        self.assertTrue(replies[3].startswith(b"503 5.5.1"), replies[3])  # no MAIL yet
        self.assertTrue(replies[7].startswith(b"250 2.0.0"), replies[7])
        self.assertTrue(replies[8].startswith(b"553 5.6.7"), replies[8])  # RFC 6531 §3.7.4.1
        envelope = self.server.show(test_id(address))["deliveries"][0]["envelope"]
        self.assertEqual(envelope["body"], "8BITMIME")
        self.assertIs(envelope["smtputf8"], True)
        self.assertEqual(envelope["declared_size"], 100)
        self.assertEqual(envelope["rcpt_to"], [tagged])
        self.assertEqual(envelope["size"], len(body))

    def test_commands_out_of_order_get_503_and_bad_syntax_501(self):
        replies = dialogue(self.server.port, [
            b"MAIL FROM:<a@example.org>\r\n", b"EHLO x.example\r\n", b"RCPT TO:<a@b.example>\r\n",
            b"MAIL FROM:a\r\n", b"STARTTLS now\r\n", b"VRFY someone\r\n", b"FOO\r\n",
            b"QUIT\r\n"])
        codes = [r[:9] for r in replies[1:]]
        self.assertEqual(codes, [b"503 5.5.1", b"250-" + DOMAIN.encode()[:5], b"503 5.5.1",
                                 b"501 5.1.7", b"501 5.5.4", b"252 2.5.0", b"500 5.5.1",
                                 b"221 2.0.0"])


class JunkCommands(ServerCase):
    """NOOP, RSET, HELP and VRFY are counted as Postfix counts junk commands: forgiven once a
    message is accepted, so an honest session is never cut short."""
    server_args = ("--max-junk-commands", "5")

    def test_an_honest_session_is_unaffected_and_each_delivery_has_its_prologue_and_transaction(self):
        address = self.server.new_address()
        c = smtp(self.server.port, helo="honest.example", source="127.0.0.31")
        c.ehlo()
        self.assertEqual(250, c.noop()[0])
        for n in range(3):  # four junk commands before each message: twelve in all
            self.assertEqual(250, c.rset()[0])
            self.assertEqual(250, c.noop()[0])
            self.assertEqual(252, c.verify("someone")[0])
            self.assertEqual(214, c.docmd("HELP")[0])
            c.sendmail("a@example.org", [address], message(f"honest {n}", "x"))
        for _ in range(5):
            self.assertEqual(250, c.noop()[0])
        code, text = c.docmd("NOOP")
        self.assertEqual((421, b"4.7.0"), (code, text[:5]))
        self.assertIn(b"too many commands", text.lower())
        c.close()
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(3, len(deliveries))
        session = self.server.wait_sessions(lambda s: s["id"] == deliveries[0]["session_id"])[0]
        self.assertEqual("limit", session["outcome"])
        self.assertEqual(3, session["messages"])
        # Each delivery's transcript: the session up to its first MAIL, then that transaction.
        whole = [(t["dir"], t["line"]) for t in session["transcript"]]
        mails = [i for i, (d, l) in enumerate(whole) if l.startswith("mail FROM:")]
        self.assertEqual(3, len(mails))
        for report, first in zip(deliveries, mails):
            lines = [(t["dir"], t["line"]) for t in report["transcript"]]
            end = next(i for i in range(first, len(whole)) if whole[i][1].endswith(" bytes>"))
            self.assertEqual(whole[:mails[0]] + whole[first:end + 1], lines)


def talk_first(port, source, address, wait_for_greeting):
    """One delivery from a raw client that sends EHLO right after connecting (an early talker) or
    after the greeting; returns the final reply to the message."""
    with socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0)) as sock:
        f = sock.makefile("rb")
        if wait_for_greeting:
            f.readline()
        sock.sendall(b"EHLO talker.example\r\n")
        if not wait_for_greeting:
            f.readline()
        while not f.readline().startswith(b"250 "):
            pass
        for command in (b"MAIL FROM:<a@sender.example>", f"RCPT TO:<{address}>".encode(), b"DATA"):
            sock.sendall(command + b"\r\n")
            f.readline()
        sock.sendall(message("early", "x", to=address) + b".\r\nQUIT\r\n")
        return f.readline()


class GreetingPause(ServerCase):
    """With --greet-pause, a client that talks before the 220 is caught every time, and the
    report says how long the greeting was held back; without it, the check says it did not test."""
    server_args = ("--greet-pause", "300")

    def early_talker(self, address, n):
        report = self.server.show(test_id(address))["deliveries"][n - 1]
        check = next(c for c in report["checks"] if c["id"] == "smtp.early_talker")
        self.assertEqual(300, report["connection"]["greet_pause_ms"])
        return check

    def test_a_client_that_talks_first_is_caught_every_time(self):
        address = self.server.new_address()
        for _ in range(10):
            self.assertTrue(talk_first(self.server.port, "127.0.0.2", address, False).startswith(b"250"))
        for n in range(1, 11):
            check = self.early_talker(address, n)
            self.assertEqual("warn", check["status"], check)
            self.assertEqual({"early_talker": True, "greet_pause_ms": 300}, check["evidence"])
        polite = self.server.new_address()
        self.assertTrue(talk_first(self.server.port, "127.0.0.2", polite, True).startswith(b"250"))
        check = self.early_talker(polite, 1)
        self.assertEqual("pass", check["status"])
        self.assertIn("held back 300 ms", check["summary"])

    def test_the_pause_is_bounded_and_zero_says_untested(self):
        out = subprocess.run([MXLENS, "serve", "--greet-pause", "60000"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(2, out.returncode)
        self.assertIn("--greet-pause must be at most 5000 ms", out.stderr)
        with Server("--greet-pause", "0") as server:
            address = server.new_address()
            talk_first(server.port, "127.0.0.2", address, False)
            report = server.show(test_id(address))["deliveries"][0]
        check = next(c for c in report["checks"] if c["id"] == "smtp.early_talker")
        self.assertEqual("pass", check["status"])
        self.assertIn("talking before it was not tested", check["summary"])


class Durability(unittest.TestCase):
    def test_every_acknowledged_delivery_survives_sigkill(self):
        server = Server().start()
        try:
            address = server.new_address()
            acknowledged, stop = [], threading.Event()
            lock = threading.Lock()

            def client(k):
                try:
                    c = smtp(server.port, helo=f"k{k}.example")
                    i = 0
                    while not stop.is_set():
                        subject = f"{k}-{i}"
                        c.sendmail("a@example.org", [address], message(subject, "payload"))
                        with lock:
                            acknowledged.append(subject)
                        i += 1
                except (smtplib.SMTPException, OSError):
                    pass  # the server was killed mid-dialogue

            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            while len(acknowledged) < 60:
                threading.Event().wait(0.01)
            server.kill()  # SIGKILL, right after the latest 250s
            stop.set()
            for t in threads:
                t.join()
            restarted = Server(data_dir=server.data_dir).start()
            try:
                deliveries = restarted.show(test_id(address))["deliveries"]
                stored = set()
                for d in deliveries:
                    raw = restarted.raw(test_id(address), d["delivery"])
                    subject = [l for l in raw.split(b"\r\n") if l.startswith(b"Subject: ")][0]
                    stored.add(subject[9:].decode())
                missing = set(acknowledged) - stored
                self.assertEqual(missing, set(), f"{len(missing)} acknowledged deliveries lost")
            finally:
                restarted.stop()
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
