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
ROUNDS = 20
DNS_TIMEOUT = 0.5  # seconds, per question (--dns-timeout)
DNS_BUDGET = 0.75  # seconds, per analysis (--dns-budget)


def hole_message(n):
    """Every question this message makes an analysis ask goes unanswered but the SPF record's:
    its reverse name, the EHLO name, the SPF record's a: term, ten DKIM keys and five From
    domains' DMARC records."""
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
        # The black hole: bound, never read, it answers nothing.
        cls.hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cls.hole.bind(("127.0.0.1", 0))
        cls.addClassCleanup(cls.hole.close)
        tmp = tempfile.TemporaryDirectory(prefix="mxlens-hole-")
        cls.addClassCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "hole.conf")
        port = cls.hole.getsockname()[1]
        with open(conf, "w") as f:
            f.write(f"server=/{HOLE}/127.0.0.1#{port}\n")
            f.write(f"server=/5.0.0.127.in-addr.arpa/127.0.0.1#{port}\n")
            # The envelope sender's SPF record answers; the name it sends the evaluation to next
            # does not, so that the analysis asks past its first round of questions.
            f.write(f'txt-record=chain.example,"v=spf1 a:a1.{HOLE} -all"\n')
        cls.dns = dnsd.DnsServer([dnsd.ZONES, conf]).start()
        cls.addClassCleanup(cls.dns.stop)
        args = ("--dns", cls.dns.address, "--dns-timeout", str(DNS_TIMEOUT), "--dns-budget",
                str(DNS_BUDGET), "--workers", "1")
        # The same server twice: one only ever sees the honest sender, the other both.
        cls.alone = Server(*args).start()
        cls.addClassCleanup(cls.alone.cleanup)
        cls.server = Server(*args).start()
        cls.addClassCleanup(cls.server.cleanup)
        msg = analysis_helpers.message(sender="a@sender.example", subject="honest")
        cls.honest_msg = analysis_helpers.sign(msg, "rsa2048")

    def send_honest(self, address, server=None):
        """Delivers the honest message; returns the seconds from the end of DATA to the 250."""
        with smtp((server or self.server).port, helo="mail.sender.example",
                  source=HONEST_IP) as s:
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
            start = time.monotonic()
            with smtp(self.server.port, helo=f"mail.{HOLE}", source=HOLE_IP) as s:
                s.sendmail("x@chain.example", [address], hole_message(n))
            results.append(time.monotonic() - start)
        except Exception as e:  # reported by the test, not lost in the thread
            results.append(repr(e))

    def honest_reports(self, address, server=None):
        return [verdicts(r) for r in (server or self.server).show(test_id(address))["deliveries"]]

    def test_the_honest_senders_reports_do_not_change(self):
        # Without the black hole: what the honest sender's report says.
        alone = self.alone.new_address()
        alone_took = [self.send_honest(alone, self.alone) for _ in range(2)]
        baseline = self.honest_reports(alone, self.alone)
        self.assertEqual([], differences(baseline[0], baseline[1]))
        statuses = {c["id"]: c["status"] for c in baseline[0]["checks"]}
        for id_ in ("spf.result", "dkim.valid", "dmarc.result", "dns.fcrdns", "smtp.helo_dns"):
            self.assertEqual("pass", statuses[id_], id_)

        # Each round: the black-holed sender delivers; while its questions wait in the hole, the
        # honest sender delivers (its 250 timed); once the black-holed analysis is done, the honest
        # sender delivers again, to the worker that ran it (with one worker, the first idle one).
        honest, holes = self.server.new_address(), self.server.new_address()
        hole_results, took = [], []
        start = time.monotonic()
        for n in range(ROUNDS):
            t = threading.Thread(target=self.send_hole, args=(holes, n, hole_results))
            t.start()
            time.sleep(DNS_TIMEOUT / 4)  # its DATA is in, its questions are in the hole
            took.append(self.send_honest(honest))
            t.join(60)
            self.send_honest(honest)
        elapsed = time.monotonic() - start
        self.assertEqual([], [r for r in hole_results if isinstance(r, str)])

        reports = self.honest_reports(honest)
        self.assertEqual(2 * ROUNDS, len(reports))
        changed = {n: differences(baseline[0], r) for n, r in enumerate(reports)}
        changed = {n: d for n, d in changed.items() if d}
        self.assertEqual({}, changed, "honest reports that changed (2 per round): " +
                         ", ".join(map(str, changed)) + "\n" +
                         "\n".join(next(iter(changed.values()), [])[:40]))
        # The black-holed sender's own report says its DNS did not answer.
        hole_report = self.server.show(test_id(holes))["deliveries"][0]
        self.assertEqual("error", {c["id"]: c["status"] for c in hole_report["checks"]}
                         ["spf.result"])
        # Its analyses never hold up the honest sender's 250 (alone it takes a few milliseconds;
        # a black-holed analysis waits up to DNS_BUDGET).
        print(f"honest 250 after DATA: alone {max(alone_took):.3f} s; next to the black hole "
              f"max {max(took):.3f} s, mean {sum(took) / len(took):.3f} s; "
              f"{ROUNDS} rounds in {elapsed:.1f} s; the black-holed delivery took at most "
              f"{max(hole_results):.3f} s")
        self.assertLess(max(took), DNS_TIMEOUT, took)
        # And the black-holed analysis itself ends within its DNS budget (and some CPU time).
        self.assertLess(max(hole_results), DNS_BUDGET + 2, hole_results)
        errors = {q.get("error") for q in hole_report["dns"]}
        self.assertIn(f"the evaluation's DNS budget of {int(DNS_BUDGET * 1000)} ms was spent",
                      errors, errors)


if __name__ == "__main__":
    unittest.main()
