"""Isolated DNS (DESIGN.md "One resolver"): one sender's unanswered questions never change another
sender's results. A sender whose every DNS question goes unanswered delivers next to an honest
sender, 20 rounds, through the same upstream (one dnsmasq, which forwards the black-holed names
to a port that never answers, as a recursive resolver would wait on a dead authority); the honest
sender's reports are the same as without the black hole, and its 250 is not held up."""
import json
import os
import re
import socket
import tempfile
import threading
import time
import unittest

import analysis_helpers
import dnsd
from harness import Server, smtp, test_id

HONEST_IP = "127.0.0.2"  # PTR mail.sender.example, SPF and DMARC of sender.example
HOLE_IP = "127.0.0.5"  # its PTR question goes to the black hole too
HOLE = "hole.example"
ROUNDS = int(os.environ.get("R", 20))
DNS_TIMEOUT = float(os.environ.get("T", 1.0))  # seconds, per question (--dns-timeout)


def hole_message(n):
    """Every question this message makes an analysis ask goes unanswered: its reverse name, the
    EHLO name, the SPF record, ten DKIM keys and five From domains' DMARC records."""
    froms = ", ".join(f"a@d{i}.{HOLE}" for i in range(5))
    sigs = "".join(f"DKIM-Signature: v=1; a=rsa-sha256; d=k{i}.{HOLE}; s=s{i}; c=relaxed/simple;"
                   f" h=from; bh=AAAA; b=AAAA\r\n" for i in range(10))
    return (f"{sigs}From: {froms}\r\nTo: t@mx.test.example\r\nSubject: hole {n}\r\n"
            f"Date: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <{n}@{HOLE}>\r\n\r\n"
            "body\r\n").encode()


# Fields that differ between two deliveries of the same message: how long a DNS answer and the
# analysis took, when the message came (DKIM timestamps and Date are judged against it), and the
# providers' replies, which quote an id and a time of their own.
VARYING = ("ms", "duration_ms", "reply", "bulk_reply", "received", "skew_seconds")


def differences(a, b, path=""):
    """The paths at which two reports differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in
                differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:300]} -> {json.dumps(b)[:300]}"]


def verdicts(report):
    """What a report says about its sender: everything but what must differ between deliveries
    (times, ids, delivery numbers, how long each DNS answer took)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VARYING}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    out = strip({k: report[k] for k in ("disposition", "score", "auth", "checks", "providers")} |
                {"errors": report["analysis"]["errors"]})
    out["disposition"]["text"] = re.sub(r"delivered as \S+", "delivered as ID",
                                        out["disposition"]["text"] or "")
    return out


class BlackHoleNextToHonestSender(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # The black hole: takes questions, never answers.
        cls.hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cls.hole.bind(("127.0.0.1", 0))
        cls.addClassCleanup(cls.hole.close)
        cls.hole_seen = 0
        threading.Thread(target=cls.swallow, daemon=True).start()
        tmp = tempfile.TemporaryDirectory(prefix="mxlens-hole-")
        cls.addClassCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "hole.conf")
        port = cls.hole.getsockname()[1]
        with open(conf, "w") as f:
            f.write(f"server=/{HOLE}/127.0.0.1#{port}\n")
            f.write(f"server=/5.0.0.127.in-addr.arpa/127.0.0.1#{port}\n")
        cls.dns = dnsd.DnsServer([dnsd.ZONES, conf]).start()
        cls.addClassCleanup(cls.dns.stop)
        cls.server = Server("--dns", cls.dns.address, "--dns-timeout", str(DNS_TIMEOUT),
                            "--workers", "2").start()
        cls.addClassCleanup(cls.server.cleanup)
        msg = analysis_helpers.message(sender="a@sender.example", subject="honest")
        cls.honest_msg = analysis_helpers.sign(msg, "rsa2048")

    @classmethod
    def swallow(cls):
        while True:
            try:
                cls.hole.recvfrom(4096)
            except OSError:
                return
            cls.hole_seen += 1

    def send_honest(self, address):
        """Delivers the honest message; returns the seconds from the end of DATA to the 250."""
        with smtp(self.server.port, helo="mail.sender.example", source=HONEST_IP) as s:
            s.ehlo()
            self.assertEqual(250, s.mail("x@sender.example")[0])
            self.assertEqual(250, s.rcpt(address)[0])
            start = time.monotonic()
            code, reply = s.data(self.honest_msg)
            took = time.monotonic() - start
        self.assertEqual(250, code, reply)
        return took

    def send_hole(self, address, n, results):
        try:
            with smtp(self.server.port, helo=f"mail.{HOLE}", source=HOLE_IP) as s:
                s.sendmail(f"x@{HOLE}", [address], hole_message(n))
            results.append("sent")
        except Exception as e:  # reported by the test, not lost in the thread
            results.append(repr(e))

    def honest_reports(self, address):
        return [verdicts(r) for r in self.server.show(test_id(address))["deliveries"]]

    def test_the_honest_senders_reports_do_not_change(self):
        # Without the black hole first: what the honest sender's report says.
        alone = self.server.new_address()
        alone_took = [self.send_honest(alone) for _ in range(2)]
        baseline = self.honest_reports(alone)
        self.assertEqual([], differences(baseline[0], baseline[1]))
        self.assertEqual("pass", {c["id"]: c["status"] for c in
                                  self.server.show(test_id(alone))["deliveries"][0]["checks"]}
                         ["spf.result"])

        honest, holes = self.server.new_address(), self.server.new_address()
        hole_results, threads, took = [], [], []
        start = time.monotonic()
        for n in range(ROUNDS):
            seen = self.hole_seen
            t = threading.Thread(target=self.send_hole, args=(holes, n, hole_results))
            t.start()
            threads.append(t)
            # The black-holed analysis is under way (its questions are in the hole) when the honest
            # sender delivers.
            deadline = time.monotonic() + 10
            while self.hole_seen < seen + 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            took.append(self.send_honest(honest))
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - start
        self.assertEqual(["sent"] * ROUNDS, hole_results)

        reports = self.honest_reports(honest)
        self.assertEqual(ROUNDS, len(reports))
        changed = {n + 1: differences(baseline[0], r) for n, r in enumerate(reports)}
        changed = {n: d for n, d in changed.items() if d}
        self.assertEqual({}, changed, "rounds whose honest report changed: " +
                         ", ".join(map(str, changed)) + "\n" +
                         "\n".join(next(iter(changed.values()), [])[:40]))
        # The black-holed sender's own report says its DNS did not answer.
        hole_report = self.server.show(test_id(holes))["deliveries"][0]
        self.assertEqual("error", {c["id"]: c["status"] for c in hole_report["checks"]}
                         ["spf.result"])
        # Its analyses never hold up the honest sender's 250 (alone it takes a fraction of a
        # second; one black-holed analysis waits DNS_TIMEOUT per round of questions).
        print(f"honest 250 after DATA: alone {max(alone_took):.3f} s; next to the black hole "
              f"max {max(took):.3f} s, mean {sum(took) / len(took):.3f} s; "
              f"{ROUNDS} rounds in {elapsed:.1f} s")
        self.assertLess(max(took), DNS_TIMEOUT, took)


if __name__ == "__main__":
    unittest.main()
