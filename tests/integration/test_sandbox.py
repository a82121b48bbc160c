"""The analysis workers are a sandbox: a worker, even one started after another died, holds no
listening socket, client connection or file of the server's; it runs with no environment, as an
unprivileged user when the server is root, with NoNewPrivs and a seccomp filter; opening a file
fails, exec ends it (reported as a sandbox stop), and the server carries on.
"""
import os
import re
import time
import unittest

from analysis_helpers import message
from harness import ServerCase, smtp, test_id


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def descriptors(pid):
    return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


class Sandbox(ServerCase):
    server_env = {"MXLENS_TEST_FAULTS": "1"}

    def deliver(self, fault=None):
        address = self.server.new_address()
        msg = message()
        if fault:
            msg = msg.replace(b"\r\n\r\n", f"\r\nX-Mxlens-Test-Fault: {fault}\r\n\r\n".encode(), 1)
        with smtp(self.server.port, source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [address], msg)
        return self.server.show(test_id(address))["deliveries"][-1]

    def workers(self, count=2):
        deadline = time.time() + 10
        while time.time() < deadline:
            found = self.server.workers()
            if len(found) == count:
                return found
            time.sleep(0.05)
        self.fail(f"expected {count} workers, found {self.server.workers()}")

    def test_a_worker_holds_nothing_and_can_do_little(self):
        # A crash, so that one of the workers looked at is a replacement.
        self.assertTrue(self.deliver("crash")["analysis"]["errors"])
        # A client connection open while the workers are looked at.
        with smtp(self.server.port, source="127.0.0.2") as s:
            s.ehlo()
            for pid in self.workers():
                # Once it is in its sandbox (a replacement may still be loading its libraries).
                deadline = time.time() + 10
                while status(pid)["Seccomp"] != "2" and time.time() < deadline:
                    time.sleep(0.05)
                fds = descriptors(pid)
                # Its socket to the server is its only socket; its files are /dev/null and the
                # log (the rest is its resolver's event loop: an epoll and a pipe).
                self.assertEqual([3], [fd for fd, t in fds.items() if t.startswith("socket:")], fds)
                self.assertEqual({"/dev/null", self.server.log_path},
                                 {t for t in fds.values() if t.startswith("/")}, fds)
                self.assertEqual("/dev/null", fds[0])
                st = status(pid)
                self.assertEqual("1", st["NoNewPrivs"])
                self.assertEqual("2", st["Seccomp"])
                if os.geteuid() == 0:
                    self.assertNotEqual("0", st["Uid"].split()[0], st["Uid"])
                # (A sanitizer build passes its runtime's options on too.)
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = [e for e in f.read().split(b"\0")
                           if e and not re.match(rb"(A|UB|L)SAN_OPTIONS=", e)]
                    self.assertEqual([b"MXLENS_TEST_FAULTS=1"], env)

    def test_opening_a_file_fails_exec_stops_the_worker_and_the_server_carries_on(self):
        opened = self.deliver("open")["analysis"]["errors"]
        self.assertEqual(1, len(opened), opened)
        self.assertIn("open /etc/passwd: Permission denied", opened[0])
        execed = self.deliver("exec")["analysis"]["errors"]
        self.assertEqual(1, len(execed), execed)
        self.assertIn("stopped by its sandbox", execed[0])
        self.assertIn("SIGSYS", execed[0])
        after = self.deliver()
        self.assertEqual([], after["analysis"]["errors"])
        self.assertEqual("pass", after["auth"]["spf"]["result"])


if __name__ == "__main__":
    unittest.main()
