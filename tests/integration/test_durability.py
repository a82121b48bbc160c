"""The 250 after DATA means the message is on disk: the store syncs its log (SQLite's WAL with
synchronous=FULL) before the reply is written. Observed from outside, with strace on the running
server: the fdatasync of the database's log comes before the write of the 250, for every message."""
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import ServerCase, message, smtp


class TheReplyWaitsForTheSync(ServerCase):
    def test_each_250_after_data_follows_an_fdatasync_of_the_database_log(self):
        address = self.server.new_address()
        with smtp(self.server.port) as c:  # the first delivery's start-up work is not traced
            c.sendmail("warm@sender.example", [address], message("warm", "up"))
        with tempfile.NamedTemporaryFile(suffix=".strace") as out, \
                tempfile.NamedTemporaryFile(suffix=".err") as err:
            # -f with -p follows every thread of the server; -y names each descriptor's file.
            tracer = subprocess.Popen(
                ["strace", "-f", "-tt", "-y", "-s", "64", "-o", out.name, "-e",
                 "trace=fsync,fdatasync,write,writev,sendmsg,sendto",
                 "-p", str(self.server.proc.pid)], stderr=err)
            try:
                deadline = time.time() + 10
                while time.time() < deadline and b"attached" not in open(err.name, "rb").read():
                    self.assertIsNone(tracer.poll(), open(err.name).read())
                    time.sleep(0.05)
                with smtp(self.server.port) as c:
                    for i in range(3):
                        c.sendmail("durable@sender.example", [address],
                                   message(f"durable {i}", "on disk before the reply"))
            finally:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=15)
            trace = open(out.name).read().splitlines()
            errors = open(err.name).read()
        self.assertTrue(trace, errors)
        syncs = [i for i, line in enumerate(trace)
                 if re.search(r"\b(fdatasync|fsync)\(\d+<[^>]*mxlens\.db-wal>", line)]
        replies = [i for i, line in enumerate(trace) if "250 2.0.0 Ok: delivered as" in line]
        self.assertEqual(len(replies), 3, "\n".join(trace[-40:]))
        previous = -1
        for r in replies:
            self.assertTrue(any(previous < s < r for s in syncs),
                            f"no sync of the database log before the reply at line {r}:\n" +
                            "\n".join(trace[max(0, r - 30):r + 1]))
            previous = r


if __name__ == "__main__":
    unittest.main()
