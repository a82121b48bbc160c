"""The running server analyzes every delivery in worker processes before it answers 250.

Clients connect from 127.0.0.2, 127.0.0.3, ... to play different sending IPs; the server's
resolver asks the test DNS server (tests/dns/zones.conf) only.
"""
import json
import os
import re
import signal
import socket
import time
import unittest

from analysis_helpers import message, sign
from harness import (SANITIZED, ServerCase, client_context, schema_errors, smtp, starttls_socket,
                     starttls_then, test_id)


def deliver(server, msg, source, mail_from, helo="helo.example", address=None):
    address = address or server.new_address()
    with smtp(server.port, helo=helo, source=source) as s:
        s.sendmail(mail_from, [address], msg)
    reports = server.show(test_id(address))["deliveries"]
    return reports[-1]


class AnalyzedDeliveries(ServerCase):
    """Every delivery carries its analysis, made by the workers with the test DNS server."""

    def test_spf_ip4_passes_for_one_address_and_fails_for_another(self):
        good = deliver(self.server, message(), "127.0.0.2", "x@sender.example")
        bad = deliver(self.server, message(), "127.0.0.3", "x@sender.example")
        for report in (good, bad):
            self.assertEqual([], report["analysis"]["errors"])
        self.assertEqual("127.0.0.2", good["connection"]["client_ip"])
        self.assertEqual("pass", good["auth"]["spf"]["result"])
        self.assertEqual("127.0.0.3", bad["connection"]["client_ip"])
        self.assertEqual("fail", bad["auth"]["spf"]["result"])

    def test_reverse_dns_of_the_client(self):
        good = deliver(self.server, message(), "127.0.0.2", "x@sender.example")
        self.assertEqual((["mail.sender.example"], True),
                         (good["connection"]["ptr"], good["connection"]["fcrdns"]))
        bare = deliver(self.server, message(), "127.0.0.4", "x@sender.example")
        self.assertEqual(([], False), (bare["connection"]["ptr"], bare["connection"]["fcrdns"]))

    def test_dmarc_pass_through_aligned_dkim_only(self):
        msg = sign(message(), "rsa2048")
        r = deliver(self.server, msg, "127.0.0.2", "bounce@other.example")
        self.assertEqual("pass", r["auth"]["spf"]["result"])  # for other.example: not aligned
        self.assertEqual("pass", r["auth"]["dkim"][0]["result"])
        d = r["auth"]["dmarc"]
        self.assertEqual(("pass", True, False), (d["result"], d["dkim_aligned"], d["spf_aligned"]))

    def test_an_arc_chain_is_validated_in_the_worker(self):
        # Sealed by dkimpy's arc_sign as a forwarder would, with the test zone's rsa2048 key.
        import dkim
        with open(os.path.join(os.path.dirname(__file__), "..", "dns", "keys", "rsa2048.pem"),
                  "rb") as f:
            key = f.read()
        msg = b"Authentication-Results: fwd.example; spf=pass smtp.mailfrom=sender.example\r\n"
        msg += message()
        sealed = b"".join(dkim.arc_sign(msg, b"rsa2048", b"sender.example", key,
                                        b"fwd.example")) + msg
        good = deliver(self.server, sealed, "127.0.0.2", "x@sender.example")
        self.assertEqual([], good["analysis"]["errors"])
        arc = good["auth"]["arc"]
        self.assertEqual(("pass", 1, "pass", "pass"),
                         (arc["cv"], arc["instances"], arc["chain"][0]["ams"],
                          arc["chain"][0]["seal"]))
        self.assertIn("arc=pass", good["auth"]["authentication_results"])
        changed = deliver(self.server, sealed.replace(b"body line", b"body LINE"), "127.0.0.2",
                          "x@sender.example")
        self.assertEqual(("fail", 1), (changed["auth"]["arc"]["cv"],
                                       changed["auth"]["arc"]["failed_instance"]))
        check = next(c for c in changed["checks"] if c["id"] == "arc.chain")
        self.assertEqual("fail", check["status"])

    def test_dmarc_pass_through_aligned_spf_only(self):
        r = deliver(self.server, message(), "127.0.0.2", "x@sender.example")
        self.assertEqual([], r["auth"]["dkim"])
        d = r["auth"]["dmarc"]
        self.assertEqual(("pass", False, True), (d["result"], d["dkim_aligned"], d["spf_aligned"]))

    def test_dmarc_fail(self):
        r = deliver(self.server, message(), "127.0.0.3", "x@sender.example")
        d = r["auth"]["dmarc"]
        self.assertEqual(("fail", "reject"), (d["result"], d["policy"]))
        self.assertIn("dmarc=fail header.from=sender.example", r["auth"]["authentication_results"])

    def test_reports_follow_the_schema_and_the_check_can_fail(self):
        # Server.show() checks every report's auth and connection parts against the schema;
        # here that check is shown to catch what breaks the contract.
        report = deliver(self.server, sign(message(), "rsa2048"), "127.0.0.2", "x@sender.example")
        self.assertEqual([], schema_errors(report))
        broken = json.loads(json.dumps(report))
        broken["auth"]["dkim"][0]["result"] = "valid"
        del broken["connection"]["fcrdns"]
        broken["auth"]["spf"]["lookups"] = -1
        self.assertEqual(3, len(schema_errors(broken)), schema_errors(broken))

    def test_gmail_defers_a_plaintext_bulk_delivery_and_accepts_it_over_tls(self):
        msg = sign(message(), "rsa2048")
        plain = deliver(self.server, msg, "127.0.0.2", "x@sender.example", helo="mail.sender.example")
        gmail = plain["providers"]["gmail"]
        self.assertEqual(("accept", "defer"), (gmail["verdict"], gmail["bulk_verdict"]))
        self.assertTrue(gmail["bulk_reply"].startswith("421-4.7.29 "), gmail["bulk_reply"])
        self.assertEqual("fail", next(c for c in plain["checks"] if c["id"] == "tls.starttls")["status"])

        address = self.server.new_address()
        with smtp(self.server.port, helo="mail.sender.example", source="127.0.0.2") as s:
            s.starttls(context=client_context())
            s.ehlo("mail.sender.example")
            s.sendmail("x@sender.example", [address], msg)
        secure = self.server.show(test_id(address))["deliveries"][0]
        self.assertEqual("accept", secure["providers"]["gmail"]["bulk_verdict"])
        self.assertEqual(250, secure["disposition"]["code"])
        self.assertGreater(secure["score"]["value"], plain["score"]["value"])

    def test_a_failed_handshake_before_a_plaintext_retry_is_graded(self):
        # The common fallback: STARTTLS fails, the sender comes back and sends in plaintext.
        address = self.server.new_address()
        starttls_then(self.server.port, "127.0.0.5", b"this is not a TLS ClientHello\r\n" * 20)
        self.assertTrue(self.server.wait_sessions(
            lambda s: s["connection"]["client_ip"] == "127.0.0.5" and s["outcome"] == "tls_failed"))
        r = deliver(self.server, message(), "127.0.0.5", "x@sender.example", address=address)
        check = next(c for c in r["checks"] if c["id"] == "tls.handshake")
        self.assertEqual("warn", check["status"])
        self.assertEqual("127.0.0.5", check["evidence"]["failed_handshakes"][0]["client_ip"])
        other = deliver(self.server, message(), "127.0.0.6", "x@sender.example")
        self.assertEqual("pass", next(c for c in other["checks"] if c["id"] == "tls.handshake")["status"])

    def test_a_plaintext_retry_at_once_after_a_failed_starttls_fails_tls_fallback_every_time(self):
        """Exim and Postfix retry in clear text the moment STARTTLS fails: the delivery must know
        of the failure however fast it comes (the failed session is not stored yet)."""
        for run in range(20):
            address = self.server.new_address()
            began = time.time()
            # Clear text where TLS was promised.
            starttls_then(self.server.port, "127.0.0.7", b"EHLO fallback.example\r\n")
            # At once, no waiting for the failed session to be stored.
            r = deliver(self.server, message(), "127.0.0.7", "x@sender.example", address=address)
            with self.subTest(run=run):
                status = {c["id"]: c for c in r["checks"]}
                self.assertEqual("fail", status["tls.fallback"]["status"], status["tls.fallback"]["summary"])
                self.assertEqual("warn", status["tls.handshake"]["status"])
                last = r["tls"]["failed_handshakes"][-1]
                self.assertEqual("plaintext_after_starttls", last["class"])
                self.assertEqual("127.0.0.7", last["client_ip"])
                self.assertTrue(last["session"])
                self.assertLess(last["seconds_before"], time.time() - began + 1)
                self.assertGreaterEqual(last["seconds_before"], 0)
                self.assertEqual([], schema_errors(r))
        # The per-source table of the last test counts them.
        import urllib.request
        with urllib.request.urlopen(f"{self.server.url}/api/v1/tests/{test_id(address)}", timeout=30) as res:
            sources = json.load(res)["sources"]
        self.assertGreaterEqual(sources[0]["failed_handshakes"], 1)

    def test_a_failure_that_ends_after_the_retry_connected_still_counts(self):
        """A sender reconnects the moment it gets the alert, before its failed session has ended
        (Postfix does): the failure then ends after the new connection began, and still counts."""
        address = self.server.new_address()
        with starttls_socket(self.server.port, "127.0.0.21") as failing:
            failing.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
            with smtp(self.server.port, helo="helo.example", source="127.0.0.21") as s:
                s.ehlo()
                s.mail("x@sender.example")
                s.rcpt(address)
                failing.close()  # the failed session ends now, inside this one
                time.sleep(0.2)
                self.assertEqual(250, s.data(message())[0])
        r = self.server.show(test_id(address))["deliveries"][-1]
        status = {c["id"]: c for c in r["checks"]}
        self.assertEqual("fail", status["tls.fallback"]["status"], status["tls.fallback"]["summary"])
        last = r["tls"]["failed_handshakes"][-1]
        self.assertEqual(("aborted", 0), (last["class"], last["seconds_before"]))
        self.assertEqual([], schema_errors(r))

    def test_a_bulk_test_fails_a_missing_unsubscribe_an_ordinary_one_warns(self):
        statuses = []
        for flags in ([], ["--bulk"]):
            address = self.server.new_address(*flags)
            r = deliver(self.server, message(), "127.0.0.2", "x@sender.example", address=address)
            statuses.append(next(c["status"] for c in r["checks"] if c["id"] == "unsub.header"))
        self.assertEqual(["warn", "fail"], statuses)

    def test_the_report_is_stored_before_the_250(self):
        address = self.server.new_address()
        with smtp(self.server.port, source="127.0.0.2") as s:
            s.ehlo("helo.example")
            s.mail("x@sender.example")
            s.rcpt(address)
            code, text = s.data(message())
            self.assertEqual(250, code)
            # Read while the session is still open: the analysis is already there.
            report = self.server.show(test_id(address))["deliveries"][0]
        self.assertEqual("pass", report["auth"]["spf"]["result"])
        self.assertIn("duration_ms", report["analysis"])

    def test_one_message_to_two_tests_is_analyzed_once_and_stored_for_both(self):
        a, b = self.server.new_address(), self.server.new_address()
        with smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
            s.sendmail("x@sender.example", [a, b], sign(message(), "ed25519",
                       key=os.path.join(os.path.dirname(__file__), "..", "dns", "keys",
                                        "ed25519.key"), alg="ed25519-sha256"))
        for address in (a, b):
            r = self.server.show(test_id(address))["deliveries"][0]
            self.assertEqual("pass", r["auth"]["dkim"][0]["result"])
            self.assertEqual("ed25519", r["auth"]["dkim"][0]["key_type"])


class StopBeforeTheReport(unittest.TestCase):
    def test_a_stop_during_the_analysis_stores_nothing_and_answers_nothing(self):
        """The message, its rows and its report are one transaction after the analysis: a stop
        before it leaves nothing, and the sender, which got no 250, still holds the message."""
        import threading
        from harness import Server
        first = Server("--workers", "1", "--analysis-timeout", "120", env={"MXLENS_TEST_FAULTS": "1"}).start()
        try:
            address = first.new_address()
            outcome = {}
            sender = threading.Thread(target=lambda: self.send(first.port, address, outcome))
            sender.start()
            # Loopback carries the message in milliseconds; then its analysis hangs (until 120 s).
            time.sleep(2)
            self.assertTrue(sender.is_alive())  # still waiting for its reply
            self.assertEqual([], first.show(test_id(address))["deliveries"])
            first.kill()
            sender.join(timeout=30)
            self.assertNotIn("accepted", outcome)  # no 250 reached the sender
            second = Server(data_dir=first.data_dir).start()
            try:
                time.sleep(1)
                self.assertEqual([], second.show(test_id(address))["deliveries"])
            finally:
                second.cleanup()
        finally:
            first.cleanup()

    def test_a_delivery_an_earlier_version_stored_without_its_report_is_analyzed_at_start(self):
        """A previous version stored the message before its report; rows it left without one
        go through the same pipeline when the server starts again."""
        import sqlite3
        from harness import Server
        first = Server().start()
        try:
            address = first.new_address()
            deliver(first, message(), "127.0.0.2", "x@sender.example", address=address)
            first.stop()
            # What the previous version left: the raw bytes in the row, no message, no report.
            db = sqlite3.connect(os.path.join(first.data_dir, "mxlens.db"))
            with db:
                db.execute("UPDATE deliveries SET raw = (SELECT raw FROM messages WHERE id = message_id), message_id = NULL")
                db.execute("DELETE FROM messages")
                db.execute("DELETE FROM reports")
                db.execute("DELETE FROM report_lines")
                db.execute("DELETE FROM source_totals")
            db.close()
            second = Server(data_dir=first.data_dir).start()
            try:
                deadline = time.time() + 30
                report = None
                while time.time() < deadline:
                    report = second.show(test_id(address))["deliveries"][0]
                    if not report["analysis"]["errors"]:
                        break
                    time.sleep(0.1)
                self.assertEqual([], report["analysis"]["errors"])
                self.assertEqual("pass", report["auth"]["spf"]["result"])
                self.assertEqual((421, "4.3.2"), (report["disposition"]["code"], report["disposition"]["enhanced"]))
                self.assertIn("started again", report["disposition"]["reason"])
                self.assertIn("recovered delivery " + test_id(address) + "/1", second.log())
            finally:
                second.cleanup()
        finally:
            first.cleanup()

    @staticmethod
    def send(port, address, outcome):
        try:
            with smtp(port, helo="helo.example", source="127.0.0.2") as s:
                s.sendmail("x@sender.example", [address], message(extra="X-Mxlens-Test-Fault: hang\r\n"))
                outcome["accepted"] = True
        except Exception as e:
            outcome["error"] = repr(e)  # the server is killed before it answers


class WorkerFaults(ServerCase):
    """A worker that crashes or hangs costs one analysis, never the delivery or the server."""

    server_args = ("--workers", "1", "--analysis-timeout", "3", "--worker-memory", "512")
    server_env = {"MXLENS_TEST_FAULTS": "1"}

    def assert_next_delivery_is_analyzed(self):
        r = deliver(self.server, message(), "127.0.0.2", "x@sender.example")
        self.assertEqual([], r["analysis"]["errors"])
        self.assertEqual("pass", r["auth"]["spf"]["result"])

    def test_a_crashing_worker_leaves_a_stored_delivery_with_an_analysis_error(self):
        before = self.server.workers()
        r = deliver(self.server, message(extra="X-Mxlens-Test-Fault: crash\r\n"), "127.0.0.2",
                    "x@sender.example")
        self.assertEqual(1, len(r["analysis"]["errors"]))
        self.assertIn("crashed", r["analysis"]["errors"][0])
        self.assertEqual("temperror", r["auth"]["spf"]["result"])
        self.assertIn(b"X-Mxlens-Test-Fault: crash", self.server.raw(r["test_id"], 1))
        self.assertEqual(1, len(self.server.workers()))
        self.assertNotEqual(before, self.server.workers())  # replaced
        self.assert_next_delivery_is_analyzed()

    def test_a_hanging_worker_is_stopped_at_the_deadline_and_replaced(self):
        started = time.monotonic()
        r = deliver(self.server, message(extra="X-Mxlens-Test-Fault: hang\r\n"), "127.0.0.2",
                    "x@sender.example")
        self.assertGreaterEqual(time.monotonic() - started, 3)
        self.assertIn("timed out", r["analysis"]["errors"][0])
        self.assert_next_delivery_is_analyzed()

    def test_a_worker_killed_while_idle_costs_no_analysis(self):
        (pid,) = self.server.workers()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        self.assert_next_delivery_is_analyzed()
        self.assertNotEqual([pid], self.server.workers())

    def test_smtp_is_served_while_an_analysis_hangs(self):
        address = self.server.new_address()
        result = {}

        def hanging():
            with smtp(self.server.port, helo="helo.example", source="127.0.0.2") as s:
                s.sendmail("x@sender.example", [address],
                           message(extra="X-Mxlens-Test-Fault: hang\r\n"))
            result["done"] = time.monotonic()

        import threading
        t = threading.Thread(target=hanging)
        t.start()
        time.sleep(0.5)  # the only worker is now stuck
        started = time.monotonic()
        with smtp(self.server.port, source="127.0.0.3") as s:
            self.assertEqual(250, s.ehlo("other.example")[0])
            self.assertEqual(250, s.noop()[0])
        self.assertLess(time.monotonic() - started, 2)
        self.assertNotIn("done", result)  # the hanging delivery is still waiting
        t.join()
        self.assertIn("timed out", self.server.show(test_id(address))["deliveries"][0]
                      ["analysis"]["errors"][0])

    def test_workers_run_with_memory_and_cpu_limits(self):
        self.assert_next_delivery_is_analyzed()  # a job sets the CPU budget
        (pid,) = self.server.workers()
        with open(f"/proc/{pid}/limits") as f:
            limits = f.read()
        address_space = re.search(r"Max address space\s+(\S+)", limits).group(1)
        cpu = re.search(r"Max cpu time\s+(\S+)", limits).group(1)
        core = re.search(r"Max core file size\s+(\S+)", limits).group(1)
        # (AddressSanitizer reserves terabytes of address space: no limit in its builds.)
        self.assertEqual("unlimited" if SANITIZED else str(512 << 20), address_space)
        self.assertNotEqual("unlimited", cpu)
        self.assertEqual("0", core)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            self.assertIn(b"__worker", f.read())


if __name__ == "__main__":
    unittest.main()
