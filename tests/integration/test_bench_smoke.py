"""A few seconds of the load generator against mxlens and of bench/floor, so that bench/ cannot
rot: every message is answered 250, stored, and reported, paced or not; every stage is measured.
(Speed is bench/'s business, not this test's.)"""
import json
import os
import subprocess
import time
import unittest

import dnsd
from harness import ServerCase, test_id

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bench")
LOADGEN = os.environ.get("MXLENS_LOADGEN") or os.path.join(BENCH, "mxlens-loadgen")
FLOOR = os.path.join(os.path.dirname(LOADGEN), "mxlens-floor")  # built beside it


class LoadgenSmoke(ServerCase):
    def test_loadgen_over_starttls_from_several_sources(self):
        address = self.server.new_address()
        out = subprocess.run([LOADGEN, "--server", f"127.0.0.1:{self.server.port}", "--to", address,
                              "--connections", "4", "--messages-per-connection", "5", "--total", "40",
                              "--starttls", "--sources", "3", "--json"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual((40, 0), (result["messages"], result["errors"]))
        self.assertGreater(result["latency_ms"]["p99"], 0)
        reports = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(40, len(reports))
        self.assertEqual({"127.0.0.2", "127.0.0.3", "127.0.0.4"},
                         {r["connection"]["client_ip"] for r in reports})
        self.assertTrue(all(r["tls"]["used"] for r in reports))

    def test_a_paced_run_keeps_its_rate(self):
        address = self.server.new_address()
        started = time.monotonic()
        out = subprocess.run([LOADGEN, "--server", f"127.0.0.1:{self.server.port}", "--to", address,
                              "--connections", "2", "--total", "10", "--rate", "10", "--json"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        self.assertEqual(10, json.loads(out.stdout)["messages"])
        # Ten transactions at ten a second: the last starts 0.9 s after the first.
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(10, len(self.server.show(test_id(address))["deliveries"]))

    def test_floor_measures_every_stage(self):
        message = os.path.join(os.path.dirname(__file__), "..", "cases", "good", "message.eml")
        out = subprocess.run([FLOOR, "--dns", dnsd.shared().address, "--message", message, "--rounds", "5"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(0, out.returncode, out.stderr)
        stages = json.loads(out.stdout)
        for stage in ("dns_question", "analysis", "report_serialize", "report_parse", "worker_handoff",
                      "store_per_message_in_commits_of_1", "store_per_message_in_commits_of_16"):
            self.assertGreater(stages[stage]["cpu_us"] + stages[stage]["wall_us"], 0, stage)
        self.assertGreater(stages["dns_question"]["questions_per_message"], 0)
        self.assertGreater(stages["report_bytes"], 1000)
        bad = subprocess.run([FLOOR, "--dns", dnsd.shared().address, "--message", "/nonexistent.eml"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual((2, True), (bad.returncode, "cannot read /nonexistent.eml" in bad.stderr))

    def test_a_refused_recipient_is_counted_as_an_error(self):
        out = subprocess.run([LOADGEN, "--server", f"127.0.0.1:{self.server.port}", "--to",
                              "nobody@elsewhere.example", "--total", "3", "--json"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(1, out.returncode)
        self.assertEqual((0, 3), (json.loads(out.stdout)["messages"], json.loads(out.stdout)["errors"]))
        self.assertIn("RCPT refused", out.stderr)


if __name__ == "__main__":
    unittest.main()
