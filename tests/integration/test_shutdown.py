"""SIGTERM with everything open at once ends the server cleanly, with status 0 within a few
seconds: downloads of a 12 MB raw message in progress on keep-alive connections (read slowly) are
finished and then closed, idle keep-alive connections are closed, a long poll is answered 204, an
event stream ends, and SMTP sessions in the middle of DATA (one of them over STARTTLS) and one idle
after EHLO are told 421 4.3.2, with nothing of their half messages stored. On the sanitizer build
this is the proof that the shutdown path is clean: Server.cleanup fails the test on any sanitizer
report in the server's log."""
import http.client
import signal
import socket
import threading
import time
import unittest

from harness import DOMAIN, Server, client_context, message, smtp, test_id

LINE = b"y" * 70 + b"\r\n"
BIG_LINES = 170_000  # 12 MB: more than the kernel buffers between the two ends
DOWNLOADS = 4
IDLE = 3
EXIT_BOUND = 8  # seconds from SIGTERM to the exit; the drain gives up after 10


class SlowDownload(threading.Thread):
    """GET the raw message on a keep-alive connection and read it at about 6 MB/s; then see whether
    the connection is closed (the server should not keep it once it stops)."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.path = path
        self.body = b""
        self.status = None
        self.closed_after = None
        self.error = None
        self.started = threading.Event()

    def run(self):
        try:
            self.sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers = read_response_head_raw(self.sock)
            self.status = status
            length = int(headers["content-length"])
            rest = headers.pop("_rest")
            self.body = rest
            while len(self.body) < length:
                chunk = self.sock.recv(min(65536, length - len(self.body)))
                if not chunk:
                    break
                self.body += chunk
                if len(self.body) > 1 << 20:
                    self.started.set()
                time.sleep(0.01)
            self.started.set()
            # Keep-alive: the connection stays open unless the server closes it.
            self.sock.settimeout(15)
            started = time.monotonic()
            extra = self.sock.recv(4096)
            self.closed_after = (time.monotonic() - started, extra)
        except OSError as e:
            self.error = repr(e)
            self.started.set()
        finally:
            self.sock.close()


def read_response_head_raw(sock):
    """The status line and headers of a response read from `sock`, and what came after them
    (as headers["_rest"])."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("closed before the headers ended")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    headers["_rest"] = rest
    return lines[0], headers


def mid_data(port, address, source, tls):
    """An SMTP session from `source` in the middle of DATA: a file to read its replies from."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO half.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    if tls:
        sock.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        sock = client_context().wrap_socket(sock, server_hostname=DOMAIN)
        f = sock.makefile("rb")
        sock.sendall(b"EHLO half.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
    for cmd in (b"MAIL FROM:<half@sender.example>", f"RCPT TO:<{address}>".encode(), b"DATA"):
        sock.sendall(cmd + b"\r\n")
        reply = f.readline()
    assert reply.startswith(b"354"), reply
    sock.sendall(b"Subject: half\r\n\r\n" + LINE * 1000)  # and then no end
    return sock, f


class SigtermWithEverythingOpen(unittest.TestCase):
    def test_sigterm_finishes_downloads_closes_the_rest_and_exits_0_within_a_few_seconds(self):
        server = Server().start()
        held = []
        try:
            address = server.new_address()
            test = test_id(address)
            big = message("big", "", to=address) + LINE * BIG_LINES
            with smtp(server.port) as c:
                c.sendmail("a@sender.example", [address], big)
            raw = server.raw(test, 1)
            self.assertEqual(big, raw)
            downloads = [SlowDownload(server.http_port, f"/api/v1/tests/{test}/deliveries/1/raw")
                         for _ in range(DOWNLOADS)]
            # Idle keep-alive connections: one request each, then nothing.
            idle = []
            for _ in range(IDLE):
                s = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers = read_response_head_raw(s)
                self.assertIn(b" 200 ", status)
                idle.append(s)
                held.append(s)
            # A long poll and an event stream.
            poll = {}

            def long_poll():
                c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
                c.request("GET", f"/api/v1/tests/{test}/wait?after=1&timeout=120")
                res = c.getresponse()
                poll["status"] = res.status
                res.read()
                c.close()

            poller = threading.Thread(target=long_poll, daemon=True)
            poller.start()
            events = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
            held.append(events)
            events.sendall(f"GET /api/v1/tests/{test}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            # SMTP: two sessions mid-DATA (one over STARTTLS), one idle after EHLO.
            halves = [mid_data(server.port, address, "127.0.0.2", False),
                      mid_data(server.port, address, "127.0.0.3", True)]
            held += [s for s, _ in halves]
            quiet = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            held.append(quiet)
            qf = quiet.makefile("rb")
            qf.readline()
            quiet.sendall(b"EHLO quiet.example\r\n")
            while not qf.readline().startswith(b"250 "):
                pass
            for d in downloads:
                d.start()
            for d in downloads:
                self.assertTrue(d.started.wait(30))
            time.sleep(0.3)
            in_progress = [len(d.body) for d in downloads]
            self.assertTrue(all(n < len(raw) for n in in_progress),
                            f"downloads already done before the signal: {in_progress}")

            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=30)
            took = time.monotonic() - started
            print(f"\nexited {server.proc.returncode} {took:.2f} s after SIGTERM; downloads were "
                  f"at {[n // 1000 for n in in_progress]} kB of {len(raw) // 1000} kB")
            self.assertEqual(0, server.proc.returncode)
            self.assertLess(took, EXIT_BOUND)
            self.assertIn("stopped;", server.log())

            # The downloads in flight were finished, byte for byte, and their connections closed.
            for d in downloads:
                d.join(timeout=30)
                self.assertIsNone(d.error)
                self.assertIn(b" 200 ", d.status)
                self.assertEqual(len(raw), len(d.body))
                self.assertTrue(d.body == raw)
                self.assertIsNotNone(d.closed_after)
                self.assertEqual(b"", d.closed_after[1])
            # The idle keep-alive connections were closed.
            for s in idle:
                s.settimeout(5)
                self.assertEqual(b"", s.recv(4096))
            # The long poll was answered 204, the event stream ended.
            poller.join(timeout=15)
            self.assertEqual(204, poll.get("status"))
            events.settimeout(5)
            data = b""
            while chunk := events.recv(4096):
                data += chunk
            self.assertIn(b"text/event-stream", data)
            # The SMTP sessions were told why, and closed.
            for sock, f in halves + [(quiet, qf)]:
                sock.settimeout(5)
                reply = f.readline()
                self.assertTrue(reply.startswith(b"421 4.3.2"), reply)
                self.assertEqual(b"", f.read())
            # Nothing of the half messages was stored.
            deliveries = server.show(test)["deliveries"]
            self.assertEqual([1], [d["delivery"] for d in deliveries])
        finally:
            for s in held:
                s.close()
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
