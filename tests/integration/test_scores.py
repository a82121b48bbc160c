"""Honest scores (CHECKS.md "Score"): an analysis that failed for real — its worker over its
memory limit, killed, or past its deadline — gives an unscored report (score.value null, and
score.unscored saying why), in the stored report, the API, the listing and `mxlens check`, which
fails on it; a check that could not be evaluated costs its weight, so a sender whose DNS does not
answer scores no better than the same sender whose DNS answers with failures."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import analysis_helpers
from harness import MXLENS, SANITIZED, Server, ServerCase, client_context, message, smtp, test_id

# The sender of the DNS comparison: no PTR for 127.0.0.4, and nothing under nowhere.example.
SILENT_SENDER = "127.0.0.4"


def get(server, path):
    with urllib.request.urlopen(server.url + path, timeout=30) as res:
        return json.load(res)


def check(server, address, *args):
    return subprocess.run([MXLENS, "check", address, "--server", server.url, "--timeout", "60",
                           *args], capture_output=True, text=True, timeout=120)


def hanging():
    """A message whose analysis hangs (the worker's test fault, with MXLENS_TEST_FAULTS=1)."""
    return message("hang", "body", sender="a@sender.example").replace(
        b"\r\n\r\n", b"\r\nX-Mxlens-Test-Fault: hang\r\n\r\n", 1)


def many_parts(n):
    """A multipart message of n empty parts: a few octets each on the wire, much more to parse."""
    head = ("From: a@sender.example\r\nTo: t@mx.test.example\r\nSubject: parts\r\n"
            "Date: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <parts@sender.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
    return head.encode() + b"--b\r\n\r\n" * n + b"--b--\r\n"


class FailedAnalyses(ServerCase):
    """One worker with the smallest memory limit there is; its analysis fails three ways."""

    server_args = ("--workers", "1", "--worker-memory", "64", "--analysis-timeout", "20")
    server_env = {"MXLENS_TEST_FAULTS": "1"}

    def deliver(self, msg, address=None):
        address = address or self.server.new_address()
        with smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [address], msg)
        return address

    def assert_unscored(self, address, because):
        """The stored report, the API's report and listing, and `mxlens check` all say it."""
        tid = test_id(address)
        stored = self.server.show(tid)["deliveries"][-1]  # schema-checked on the way
        score = stored["score"]
        self.assertIsNone(score["value"], score)
        self.assertIn("the analysis failed: ", score["unscored"])
        self.assertIn(because, score["unscored"])
        self.assertEqual(0, score["passed"])
        self.assertGreater(score["errors"], 0)
        api = get(self.server, f"/api/v1/tests/{tid}/deliveries/1")["score"]
        self.assertIsNone(api["value"])
        self.assertEqual(score["unscored"], api["unscored"])
        listed = get(self.server, f"/api/v1/tests/{tid}")["deliveries"][0]["score"]
        self.assertIsNone(listed["value"])
        self.assertEqual(score["unscored"], listed["unscored"])

        with tempfile.TemporaryDirectory() as tmp:
            junit = os.path.join(tmp, "junit.xml")
            out = check(self.server, address, "--min-score", "1", "--junit", junit)
            self.assertEqual(1, out.returncode, out.stdout + out.stderr)
            self.assertIn("FAILED  score>=1  (is unscored: the analysis failed: ", out.stdout)
            self.assertIn(because, out.stdout)
            failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
            self.assertIn("is unscored: the analysis failed: ", failure.get("message"))
        # Any score requirement, even one every score meets.
        self.assertEqual(1, check(self.server, address, "--require", "score>=0").returncode)
        self.assertEqual(1, check(self.server, address, "--require", "score<=10").returncode)
        return stored

    # AddressSanitizer reserves terabytes of address space, so its builds' workers run without
    # the limit this test reaches (analyzers/worker/worker.cpp).
    @unittest.skipIf(SANITIZED, "a sanitizer build's workers have no address-space limit")
    def test_a_worker_over_its_memory_limit_gives_an_unscored_report(self):
        address = self.deliver(many_parts(1_000_000))
        # GMime's allocator aborts the worker when its address space is used up; an allocation
        # refused in C++ ends the analyzer with "out of memory". Either way: unscored, and why.
        report = self.assert_unscored(address, "")
        error = report["analysis"]["errors"][0]
        self.assertRegex(error, r"crashed \(signal 6, Aborted\)|out of memory", error)
        self.assertEqual(1, len(self.server.workers()))  # replaced

    def test_a_worker_killed_during_the_analysis_gives_an_unscored_report(self):
        address = self.server.new_address()
        (pid,) = self.server.workers()
        # A hanging analysis keeps the worker busy (in pause()) until it is killed from outside.
        sender = threading.Thread(target=self.deliver, args=(hanging(), address))
        sender.start()
        deadline = time.time() + 15
        while time.time() < deadline:
            with open(f"/proc/{pid}/wchan") as f:
                if "pause" in f.read():
                    break
            time.sleep(0.05)
        else:
            self.fail("the worker never took the job")
        os.kill(pid, signal.SIGKILL)
        sender.join(60)
        self.assert_unscored(address, "crashed (signal 9, Killed)")

    def test_an_analysis_past_its_deadline_gives_an_unscored_report(self):
        address = self.deliver(hanging())
        self.assert_unscored(address, "timed out")

    def test_the_next_delivery_is_scored_again(self):
        address = self.deliver(message("fine", "body", sender="a@sender.example"))
        score = self.server.show(test_id(address))["deliveries"][0]["score"]
        self.assertIsNotNone(score["value"], score)
        self.assertIsNone(score["unscored"])
        self.assertEqual(0, check(self.server, address, "--min-score", "0").returncode)


class UnansweredDns(unittest.TestCase):
    """The same message from the same sender, once with DNS that answers (with failures) and once
    with DNS that never answers: not evaluated is not passed."""

    @classmethod
    def setUpClass(cls):
        # A resolver port that takes the questions and never answers them.
        cls.black_hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cls.black_hole.bind(("127.0.0.1", 0))
        cls.addClassCleanup(cls.black_hole.close)
        port = cls.black_hole.getsockname()[1]
        cls.answering = Server().start()
        cls.addClassCleanup(cls.answering.cleanup)
        cls.silent = Server("--dns", f"127.0.0.1@{port}", "--dns-timeout", "0.2").start()
        cls.addClassCleanup(cls.silent.cleanup)

    def deliver(self, server):
        address = server.new_address()
        msg = analysis_helpers.message(sender="a@nowhere.example", subject="no dns")
        with smtp(server.port, helo="mail.nowhere.example", source=SILENT_SENDER) as s:
            s.starttls(context=client_context())
            s.ehlo("mail.nowhere.example")
            s.sendmail("x@nowhere.example", [address], msg)
        return address, server.show(test_id(address))["deliveries"][0]

    def test_a_sender_cannot_raise_its_score_by_breaking_its_dns(self):
        _, failing = self.deliver(self.answering)
        address, silent = self.deliver(self.silent)
        statuses = {c["id"]: c["status"] for c in silent["checks"]}
        for id_ in ("dns.ptr", "spf.result", "dmarc.record"):
            self.assertEqual("error", statuses[id_], id_)
        self.assertEqual("fail", {c["id"]: c["status"] for c in failing["checks"]}["dns.ptr"])
        self.assertIsNotNone(failing["score"]["value"], failing["score"])
        self.assertIsNotNone(silent["score"]["value"], silent["score"])  # judged, errors counted
        self.assertLessEqual(silent["score"]["value"], failing["score"]["value"],
                             (silent["score"], failing["score"]))
        self.assertGreater(silent["score"]["errors"], failing["score"]["errors"])

        # A check requirement on a check that is `error` fails, naming it, unless it allows it.
        out = check(self.silent, address, "--require", "check:dns.ptr=pass|fail")
        self.assertEqual(1, out.returncode, out.stdout + out.stderr)
        self.assertIn("FAILED  check:dns.ptr=pass|fail  (is error: ", out.stdout)
        self.assertIn("DNS error", out.stdout)
        self.assertEqual(1, check(self.silent, address, "--require", "check:dns.ptr!=fail").returncode)
        out = check(self.silent, address, "--require", "check:dns.ptr=pass|error")
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        # So does an authentication result that is a temperror.
        out = check(self.silent, address, "--require", "spf!=fail")
        self.assertEqual(1, out.returncode, out.stdout + out.stderr)
        self.assertIn("(is temperror: spf could not be evaluated)", out.stdout)


if __name__ == "__main__":
    unittest.main()
