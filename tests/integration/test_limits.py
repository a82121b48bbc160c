"""Every receiver limit, seen from a client: the reply code each one sends, and when. The idle
timeout and the per-address connection limit are in test_cli.Limits."""
import socket
import ssl
import time
import unittest

import tlsraw
from harness import DOMAIN, Server, ServerCase, client_context, message, smtp, starttls_socket


def lines_until_close(f):
    out = []
    while line := f.readline():
        out.append(line)
    return out


class Transactions(ServerCase):
    server_args = ("--max-messages-per-connection", "2")

    def test_the_101st_recipient_gets_452_4_5_3_and_the_hundred_get_the_message(self):
        address = self.server.new_address()
        user, _ = address.split("@")
        with smtp(self.server.port) as c:
            c.ehlo()
            c.mail("many@sender.example")
            for i in range(100):
                self.assertEqual(250, c.rcpt(f"{user}+r{i}@{DOMAIN}")[0])
            code, text = c.rcpt(f"{user}+r100@{DOMAIN}")
            self.assertEqual((code, text[:5]), (452, b"4.5.3"), text)
            self.assertEqual(250, c.data(message("hundred", "x"))[0])
        rcpts = self.server.show(user)["deliveries"][0]["envelope"]["rcpt_to"]
        self.assertEqual(100, len(rcpts))

    def test_the_message_after_the_last_one_a_connection_may_carry_gets_421(self):
        address = self.server.new_address()
        with smtp(self.server.port) as c:
            for i in range(2):
                c.sendmail("a@sender.example", [address], message(f"m{i}", "x"))
            code, text = c.mail("a@sender.example")
            self.assertEqual((code, text[:5]), (421, b"4.7.0"), text)
            with self.assertRaises(Exception):
                c.noop()  # closed by the server

    def test_twenty_rejected_commands_end_the_session_with_421(self):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO c.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        sock.sendall(b"BOGUS\r\n" * 25)
        replies = lines_until_close(f)
        self.assertEqual(20, sum(1 for r in replies if r.startswith(b"5")), replies)
        self.assertTrue(replies[-1].startswith(b"421 4.7.0"), replies[-1])
        sock.close()


class Replies(ServerCase):
    def test_the_ehlo_reply_shows_the_clients_name_in_printable_ascii_only(self):
        # RFC 5321 §4.2: reply text is printable ASCII (control characters are refused with the
        # command already; 8-bit octets were echoed as they came).
        for verb in (b"EHLO", b"HELO"):
            sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(verb + b" caf\xe9\xc3\xa9.example\r\n")
            first = f.readline()
            self.assertTrue(first.startswith(b"250"), first)
            self.assertIn(b"Hello caf\\xE9\\xC3\\xA9.example", first)
            self.assertTrue(all(32 <= b < 127 for b in first.rstrip(b"\r\n")), first)
            sock.close()


class SessionTime(unittest.TestCase):
    def test_a_session_kept_alive_with_noop_ends_at_the_session_time_limit(self):
        with Server("--max-session-time", "2", "--idle-timeout", "60") as s:
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            started = time.time()
            got = b""
            while time.time() - started < 8:
                sock.sendall(b"NOOP\r\n")
                got = f.readline()
                if not got.startswith(b"250"):
                    break
                time.sleep(0.3)
            took = time.time() - started
            self.assertTrue(got.startswith(b"421 4.4.2"), got)
            self.assertTrue(1.5 <= took <= 3.5, took)
            sock.close()


class Connections(unittest.TestCase):
    def test_connections_over_the_total_limit_get_421_and_a_freed_slot_is_used_again(self):
        with Server("--max-connections", "3") as s:
            held = []
            for i in range(3):  # from three addresses, so that no per-address limit applies
                c = socket.create_connection(("127.0.0.1", s.port), timeout=10,
                                             source_address=(f"127.0.0.{i + 2}", 0))
                self.assertTrue(c.recv(100).startswith(b"220"))
                held.append(c)
            extra = socket.create_connection(("127.0.0.1", s.port), timeout=10,
                                             source_address=("127.0.0.9", 0))
            self.assertTrue(extra.recv(200).startswith(b"421 4.7.0"))
            extra.close()
            held.pop().close()
            deadline = time.time() + 5
            while True:
                again = socket.create_connection(("127.0.0.1", s.port), timeout=10,
                                                 source_address=("127.0.0.9", 0))
                greeting = again.recv(200)
                again.close()
                if greeting.startswith(b"220") or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertTrue(greeting.startswith(b"220"), greeting)
            for c in held:
                c.close()


class ConnectionRate(unittest.TestCase):
    def greeting(self, s, source):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10, source_address=(source, 0))
        try:
            return c.recv(300)
        finally:
            c.close()

    def test_connections_over_the_rate_of_an_address_and_of_a_network_get_421(self):
        with Server("--max-connection-rate-per-ip", "5",
                    "--max-connection-rate-per-network", "8") as s:
            for _ in range(5):
                self.assertTrue(self.greeting(s, "127.0.0.5").startswith(b"220"))
            refused = self.greeting(s, "127.0.0.5")
            self.assertTrue(refused.startswith(b"421 4.7.0"), refused)
            self.assertIn(b"from your address (more than 5 a minute), try again in", refused)
            # Another address of the same /24 has the network's three left.
            for _ in range(3):
                self.assertTrue(self.greeting(s, "127.0.0.6").startswith(b"220"))
            refused = self.greeting(s, "127.0.0.6")
            self.assertTrue(refused.startswith(b"421 4.7.0"), refused)
            self.assertIn(b"from your network (127.0.0.0/24) (more than 8 a minute)", refused)
            # Another network is not held back.
            self.assertTrue(self.greeting(s, "127.0.1.1").startswith(b"220"))


class Timeouts(unittest.TestCase):
    def test_data_that_stops_coming_gets_421_4_4_2_at_the_idle_timeout_and_nothing_is_stored(self):
        with Server("--idle-timeout", "1") as s:
            address = s.new_address()
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            for cmd in (b"EHLO c.example", b"MAIL FROM:<a@sender.example>",
                        f"RCPT TO:<{address}>".encode(), b"DATA"):
                sock.sendall(cmd + b"\r\n")
                while (line := f.readline())[3:4] == b"-":
                    pass
            self.assertTrue(line.startswith(b"354"), line)
            sock.sendall(b"Subject: half\r\n\r\nthe first line, and then nothing\r\n")
            started = time.time()
            self.assertTrue(f.readline().startswith(b"421 4.4.2"))
            self.assertTrue(0.5 <= time.time() - started <= 3, time.time() - started)
            sock.close()
            self.assertEqual([], s.show(address.split("@")[0])["deliveries"])

    def test_a_clienthello_that_stops_halfway_is_dropped_at_the_handshake_timeout(self):
        with Server("--tls-handshake-timeout", "3", "--idle-timeout", "60") as s:
            sock = starttls_socket(s.port, "127.0.0.2")
            sock.sendall(tlsraw.client_hello()[:30])
            started = time.time()
            while sock.recv(65536):
                pass
            took = time.time() - started
            sock.close()
            self.assertTrue(1 <= took <= 5, took)  # 3 s, give or take 2

    def test_after_quit_inside_tls_the_wait_for_close_notify_is_a_second(self):
        with Server("--idle-timeout", "60") as s:
            raw = starttls_socket(s.port, "127.0.0.2")
            # TLS over memory buffers, so that the client never answers the server's close_notify
            # and the moment the server closes the TCP connection can be seen.
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client_context().wrap_bio(incoming, outgoing, server_hostname=DOMAIN)

            def pump():
                if outgoing.pending:
                    raw.sendall(outgoing.read())
                data = raw.recv(65536)
                if data:
                    incoming.write(data)
                return data

            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
            if outgoing.pending:
                raw.sendall(outgoing.read())
            tls.write(b"EHLO c.example\r\nQUIT\r\n")
            raw.sendall(outgoing.read())
            text = b""
            while b"221 " not in text:
                try:
                    text += tls.read(65536)
                except ssl.SSLWantReadError:
                    self.assertTrue(pump(), text)
            started = time.time()
            while raw.recv(65536):  # the server's close_notify, then its FIN
                pass
            took = time.time() - started
            raw.close()
            self.assertLess(took, 2.5)  # 1 s, give or take 1


if __name__ == "__main__":
    unittest.main()
