"""One message costs its size once, whatever number of tests it goes to, and all messages at once
stay within a budget: past it a sender gets 452 4.3.1 and tries again later, the server never
runs out of memory. A --max-message-size a worker cannot take is refused at start."""
import glob
import os
import socket
import subprocess
import time
import unittest
import urllib.request

from harness import DOMAIN, MXLENS, SANITIZED, Server, ServerCase, message, smtp

MB = 1000 * 1000


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def database_bytes(data_dir):
    """The database as it lies on disk: the file, its write-ahead log and its index."""
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data_dir, "mxlens.db*")))


def big_message(size):
    head = message("twenty megabytes", "")
    line = b"x" * 998 + b"\r\n"
    return head + line * (size // len(line))


class OneMessageToAHundredTests(ServerCase):
    server_args = ("--catch-all", "--max-new-tests-per-minute", "1000")

    def test_20_mb_to_100_tests_grows_the_database_under_25_mb_and_rss_under_100_mb(self):
        # A server that has received a few megabytes already: its write-ahead log is at its
        # bound (4 MiB, which it keeps between checkpoints), so what is measured is the message,
        # not the log of an empty database growing to its working size.
        with smtp(self.server.port) as c:
            c.sendmail("warm@sender.example", [f"warmupfirst@{DOMAIN}"], big_message(5 * MB))
        time.sleep(0.5)
        pid = self.server.proc.pid
        rss_before = status_kib(pid, "VmRSS")
        disk_before = database_bytes(self.server.data_dir)
        raw = big_message(20 * MB)
        recipients = [f"budget{i:04d}test@{DOMAIN}" for i in range(100)]
        with smtp(self.server.port) as c:
            c.ehlo()
            refused = c.sendmail("big@sender.example", recipients, raw)
        self.assertEqual(refused, {})
        # The next write lets the log go back to its bound (the checkpoint of the big one is done).
        with smtp(self.server.port) as c:
            c.sendmail("after@sender.example", [f"warmupfirst@{DOMAIN}"], message("after", "it"))
        grown = database_bytes(self.server.data_dir) - disk_before
        peak = status_kib(pid, "VmHWM") - rss_before
        print(f"\n20 MB to 100 tests: database +{grown / MB:.1f} MB, server RSS peak "
              f"+{peak / 1024:.1f} MiB")
        self.assertLess(grown, 25 * MB)
        # AddressSanitizer keeps freed memory in quarantine (256 MB): RSS says nothing there.
        if not SANITIZED:
            self.assertLess(peak, 100 * 1024)
        # Every test has it, whole, with a report.
        for rcpt in (recipients[0], recipients[57], recipients[-1]):
            test_id = rcpt.split("@")[0]
            shown = self.server.show(test_id)
            self.assertEqual(len(shown["deliveries"]), 1)
            self.assertIsNotNone(shown["deliveries"][0]["score"])
            self.assertEqual(len(self.server.raw(test_id, 1)), len(raw))


class RawDownloads(ServerCase):
    def test_downloading_a_20_mb_message_costs_the_server_a_part_not_the_message(self):
        address = self.server.new_address()
        raw = big_message(20 * MB)
        with smtp(self.server.port) as c:
            c.sendmail("big@sender.example", [address], raw)
        pid = self.server.proc.pid
        url = f"{self.server.url}/api/v1/tests/{address.split('@')[0]}/deliveries/1/raw"
        with urllib.request.urlopen(url, timeout=30) as res:  # the first read warms the cache
            self.assertEqual(res.read(), raw)
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # the peak RSS starts again from now (proc(5))
        before = status_kib(pid, "VmRSS")
        for _ in range(3):
            with urllib.request.urlopen(url, timeout=30) as res:
                self.assertEqual(res.headers["Content-Length"], str(len(raw)))
                self.assertEqual(res.read(), raw)
        peak = status_kib(pid, "VmHWM") - before
        print(f"\nthree downloads of 20 MB: server RSS peak +{peak / 1024:.1f} MiB")
        if not SANITIZED:  # freed memory stays in ASan's quarantine
            self.assertLess(peak, 8 * 1024)


def start_data(port, rcpt, size):
    """A session that sent `size` octets of DATA and has not ended it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO holder.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    sock.sendall(b"MAIL FROM:<holder@sender.example>\r\n")
    f.readline()
    sock.sendall(f"RCPT TO:<{rcpt}>\r\n".encode())
    f.readline()
    sock.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    sock.sendall(b"Subject: held\r\n\r\n" + (b"y" * 998 + b"\r\n") * (size // 1000))
    return sock, f


class TheBudgetOfMessagesInFlight(unittest.TestCase):
    def test_a_message_past_the_budget_gets_452_and_goes_through_once_there_is_room(self):
        with Server("--max-message-size", "2000000", "--max-data-in-flight", "2000000") as s:
            addr = s.new_address()
            # One session holds 1.5 MB of an unfinished message: about three quarters of it all.
            holder, replies = start_data(s.port, addr, 1_500_000)
            time.sleep(0.5)  # its bytes are read
            with smtp(s.port) as c:
                c.ehlo()
                # A SIZE that does not fit now is refused before any byte is sent (RFC 1870).
                code, text = c.mail("sizer@sender.example", ["SIZE=1000000"])
                self.assertEqual((code, text[:5]), (452, b"4.3.1"), text)
                c.rset()
                # One that says nothing of its size is read and refused at its end.
                c.mail("late@sender.example")
                c.rcpt(addr)
                code, text = c.data(big_message(1 * MB))
                self.assertEqual((code, text[:5]), (452, b"4.3.1"), text)
                # The session goes on: a small message fits.
                c.sendmail("small@sender.example", [addr], message("small", "fits"))
            # The holder ends its message: it is stored, and its room is free again.
            holder.sendall(b".\r\n")
            self.assertTrue(replies.readline().startswith(b"250"))
            holder.close()
            with smtp(s.port) as c:
                c.sendmail("late@sender.example", [addr], big_message(1 * MB))
            test = s.show(addr.split("@")[0])
            self.assertEqual(len(test["deliveries"]), 3)
            self.assertIn("--max-data-in-flight", s.log())


class ImpossibleSizes(unittest.TestCase):
    def run_serve(self, *args):
        return subprocess.run([MXLENS, "serve", "--smtp-listen", "127.0.0.1:0", "--http-listen",
                               "127.0.0.1:0", "--data-dir", "/nonexistent/never-created", *args],
                              capture_output=True, timeout=30)

    def test_a_message_size_no_worker_takes_is_refused_at_start(self):
        out = self.run_serve("--max-message-size", "5000000000")
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn(b"--max-message-size must be at most 268435456", out.stderr)

    def test_a_budget_smaller_than_one_message_is_refused_at_start(self):
        out = self.run_serve("--max-message-size", "10000000", "--max-data-in-flight", "5000000")
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn(b"--max-data-in-flight must be at least --max-message-size", out.stderr)


if __name__ == "__main__":
    unittest.main()
