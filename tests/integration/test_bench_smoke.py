"""A few seconds of the load generator against mxlens, so that bench/ cannot rot: every message
is answered 250, stored, and reported. (Speed is bench/'s business, not this test's.)"""
import json
import os
import subprocess
import unittest

from harness import ServerCase, test_id

LOADGEN = os.environ.get("MXLENS_LOADGEN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bench", "mxlens-loadgen")


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

    def test_a_refused_recipient_is_counted_as_an_error(self):
        out = subprocess.run([LOADGEN, "--server", f"127.0.0.1:{self.server.port}", "--to",
                              "nobody@elsewhere.example", "--total", "3", "--json"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(1, out.returncode)
        self.assertEqual((0, 3), (json.loads(out.stdout)["messages"], json.loads(out.stdout)["errors"]))
        self.assertIn("RCPT refused", out.stderr)


if __name__ == "__main__":
    unittest.main()
