"""The command line and the session limits, as an operator meets them."""
import json
import os
import re
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import dnsd
from harness import DOMAIN, MXLENS, Server, message, smtp, test_id


def run(*args, env=None):
    return subprocess.run([MXLENS, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


class CommandLine(unittest.TestCase):
    def test_help_lists_every_serve_flag(self):
        out = run("serve", "--help")
        self.assertEqual(out.returncode, 0)
        for flag in ["--smtp-listen", "--hostname", "--domain", "--data-dir", "--tls-cert",
                     "--tls-key", "--catch-all", "--max-message-size", "--retention", "--dns",
                     "--dns-timeout", "--workers", "--analysis-timeout", "--worker-memory",
                     "--max-junk-commands"]:
            self.assertIn(flag, out.stdout)
        self.assertEqual(run("--help").returncode, 0)

    def test_a_bad_flag_or_value_is_one_line_naming_it_and_exit_2(self):
        for args, named in [(["serve", "--no-such-flag"], "--no-such-flag"),
                            (["serve", "--max-message-size", "lots"], "max-message-size"),
                            (["serve", "--smtp-listen", "nowhere"], "--smtp-listen"),
                            (["serve", "--tls-cert", "a.pem"], "--tls-key"),
                            (["serve", "--dns", "resolver.example"], "--dns"),
                            (["serve", "--dns", "127.0.0.1@99999"], "--dns"),
                            (["serve", "--workers", "0"], "--workers"),
                            (["serve", "--analysis-timeout", "0"], "--analysis-timeout"),
                            (["serve", "--max-junk-commands", "0"], "--max-junk-commands"),
                            (["analyze", "x.eml", "--client-ip", "nowhere"], "--client-ip"),
                            (["analyze"], "file")]:
            out = run(*args)
            self.assertEqual(out.returncode, 2, args)
            self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
            self.assertIn(named, out.stderr)

    def test_flags_come_from_the_environment_and_the_command_line_wins(self):
        out = run("serve", env={"MXLENS_RETENTION": "0"})
        self.assertEqual(out.returncode, 2)
        self.assertIn("--retention", out.stderr)
        # An environment value is used when the flag is absent; a flag beats it.
        self.assertIn("domain=env.example", self.log_with_env_domain())
        self.assertIn("domain=flag.example", self.log_with_env_domain("--domain", "flag.example"))

    def log_with_env_domain(self, *flags):
        server = Server(*flags, env={"MXLENS_DOMAIN": "env.example"})
        try:
            return server.start().log()
        finally:
            server.cleanup()


def analyze_text(msg, client_ip="127.0.0.4", helo="localhost", *more, dns=None):
    """`mxlens analyze - --format text` of the message, with the shared test DNS by default."""
    out = subprocess.run([MXLENS, "analyze", "-", "--client-ip", client_ip, "--helo", helo,
                          "--dns", dns or dnsd.shared().address, "--format", "text", *more],
                         input=msg, capture_output=True, timeout=60)
    return out


def case_text(name):
    """analyze_text of a golden case's message (tests/cases/NAME), with its own DNS data."""
    import test_cases
    folder, case = test_cases.load_case(name)
    msg = test_cases.prepared_message(folder, case)
    with tempfile.TemporaryDirectory(prefix="mxlens-case-text-") as tmp:
        zone = os.path.join(tmp, "zone.conf")
        test_cases.write_zone(folder, case, zone)
        server = dnsd.DnsServer([zone]).start()
        try:
            return analyze_text(msg, case["client_ip"], case["helo"], "--mail-from",
                                case["mail_from"], dns=server.address)
        finally:
            server.stop()


class AnalyzeText(unittest.TestCase):
    def test_text_summary_groups_by_category_failures_first_with_fixes(self):
        msg = (b"From: a@nowhere.example\r\nSubject: x\r\n\r\nbody\r\n")
        out = analyze_text(msg)
        self.assertEqual(0, out.returncode, out.stderr)
        text = out.stdout.decode()
        self.assertRegex(text, r"^Score \d+\.\d/10  \(\d+ of \d+ checks passed\)")
        self.assertNotIn("\033[", text)  # no colour when the output is not a terminal
        headers = text.split("\nheaders\n")[1].split("\n\n")[0].splitlines()
        statuses = [line.split()[0] for line in headers if not line.strip().startswith("fix:")]
        order = {"fail": 0, "error": 1, "warn": 2, "pass": 3, "info": 4, "skip": 5}
        self.assertEqual(sorted(statuses, key=order.get), statuses)
        self.assertIn("fail  hdr.date", text)
        self.assertIn("fix: Add a Date header", text)
        for category in ("transport", "tls", "dns", "spf", "dkim", "dmarc", "headers", "unsubscribe",
                         "content", "providers"):
            self.assertIn("\n" + category + "\n", text)

    def test_text_shows_the_spf_record_term_by_term_and_the_deciding_term(self):
        msg = (b"From: a@include.example\r\nSubject: x\r\n\r\nbody\r\n")
        out = analyze_text(msg, "127.0.0.2", "mail.include.example", "--mail-from",
                           "a@include.example")
        self.assertEqual(0, out.returncode, out.stderr)
        text = out.stdout.decode()
        self.assertIn("\nSPF record of include.example: pass, decided by include:sender.example\n"
                      "  include:sender.example  1 lookup  matched\n"
                      "  -all\n", text)

    def test_text_shows_the_received_chain_oldest_hop_first_with_its_tls(self):
        msg = (b"Received: from relay.example (relay.example [192.0.2.20])\r\n"
               b"\tby mx.example (Postfix) with ESMTP id 4Xy; Tue, 3 Dec 2024 10:15:03 +0000\r\n"
               b"Received: from \x1b[31mevil.example ([192.0.2.10]) by relay.example with esmtps\r\n"
               b"\t(TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.96) id 1; Tue, 3 Dec 2024 10:15:02 +0000\r\n"
               b"From: a@nowhere.example\r\nSubject: x\r\n\r\nbody\r\n")
        out = analyze_text(msg)
        self.assertEqual(0, out.returncode, out.stderr)
        text = out.stdout.decode()
        self.assertIn("\nReceived chain (oldest hop first)\n"
                      "  1. from \\x1B[31mevil.example ([192.0.2.10])\n"
                      "     by relay.example with esmtps\n"
                      "     TLS: TLS1.3 TLS_AES_256_GCM_SHA384  at 2024-12-03T10:15:02.000Z\n"
                      "  2. from relay.example (relay.example [192.0.2.20])\n"
                      "     by mx.example (Postfix) with ESMTP\n"
                      "     clear text  at 2024-12-03T10:15:03.000Z\n", text)
        self.assertIn("hdr.received  2 hops, 1 in TLS; hop 2 went in clear text: from relay.example", text)

    def test_text_shows_the_arc_chain_set_by_set_and_where_it_broke(self):
        # The golden case's message, ARC-sealed twice by dkimpy and changed after the second seal.
        out = case_text("arc-break-body")
        self.assertEqual(0, out.returncode, out.stderr)
        text = out.stdout.decode()
        self.assertIn("\nARC chain (oldest set first): cv=fail at i=2: ARC-Message-Signature body "
                      "hash does not match: the body was changed\n"
                      "  i=1 sealed by list.example (s=arc1) cv=none  AMS not_checked, seal not_checked\n"
                      "     saw: mx.list.example; spf=pass smtp.mailfrom=good.example; "
                      "dkim=pass header.d=good.example\n"
                      "  i=2 sealed by forward.example (s=arc2) cv=pass  AMS fail, seal not_checked\n",
                      text)
        self.assertIn("fail  arc.chain  ARC chain of 2 sets is broken at i=2", text)

    def test_text_shows_where_the_dmarcbis_walk_differs_from_rfc_7489(self):
        out = case_text("dmarcbis-psd-org-domain")
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertIn("\nDMARCbis (draft, for information; RFC 7489 decides): organizational domain "
                      "sub.corp.example (RFC 7489 corp.example), record at sub.corp.example, "
                      "policy quarantine (p=) (RFC 7489 reject)\n", out.stdout.decode())

    def test_a_long_received_chain_is_read_up_to_its_newest_50_hops(self):
        hops = b"".join(b"Received: from h%d.example ([192.0.2.%d]) by mx.example with ESMTPS id %d;"
                        b" Tue, 3 Dec 2024 10:15:02 +0000\r\n" % (i, i, i) for i in range(60))
        out = subprocess.run([MXLENS, "analyze", "-", "--client-ip", "127.0.0.4", "--helo", "localhost",
                              "--dns", dnsd.shared().address],
                             input=hops + b"From: a@nowhere.example\r\n\r\nbody\r\n",
                             capture_output=True, timeout=60)
        self.assertEqual(0, out.returncode, out.stderr)
        report = json.loads(out.stdout)
        self.assertEqual(50, len(report["received_chain"]))
        self.assertEqual("h49.example ([192.0.2.49])", report["received_chain"][0]["from"])
        check = next(c for c in report["checks"] if c["id"] == "hdr.received")
        self.assertEqual("60 hops (the newest 50 read), 50 in TLS; none says it went in clear text",
                         check["summary"])
        self.assertEqual({"hops": 60, "kept": 50}, check["evidence"])

    def test_text_from_the_message_never_reaches_the_terminal_as_control_characters(self):
        # ESC [ 31m, OSC with BEL, and U+009B (CSI as one C1 character) in From and Subject.
        evil = b"\x1b[31mred\x1b]0;owned\x07\xc2\x9b2J"
        msg = (b'From: "' + evil + b'"@nowhere.example\r\nSubject: ' + evil +
               b"\r\nDate: Mon, 23 Nov 2026 00:00:00 +0000\r\n\r\nbody\r\n")
        args = [MXLENS, "analyze", "-", "--client-ip", "127.0.0.4", "--helo", "evil.example",
                "--dns", dnsd.shared().address]
        text = subprocess.run(args + ["--format", "text"], input=msg, capture_output=True,
                              timeout=60).stdout
        self.assertIn(b"\\x1B[31mred\\x1B]0;owned\\x07\\u009B2J", text)  # shown, escaped
        for control in (b"\x1b", b"\x07", b"\xc2\x9b"):
            self.assertNotIn(control, text)
        # The JSON output means the same characters, written as escapes.
        out = subprocess.run(args, input=msg, capture_output=True, timeout=60).stdout
        for control in (b"\x1b", b"\x07", b"\xc2\x9b"):
            self.assertNotIn(control, out)
        report = json.loads(out)
        value = next(c for c in report["checks"] if c["id"] == "hdr.subject")["evidence"]["value"]
        self.assertEqual(evil.decode(), value)


class ServerLog(unittest.TestCase):
    def test_the_server_log_never_carries_control_characters_from_a_session(self):
        with Server() as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                f = sock.makefile("rb")
                f.readline()
                sock.sendall(b"EHLO \xc2\x9b2Jcaf\xe9.example\r\n")
                while f.readline()[3:4] == b"-":
                    pass
                sock.sendall(b"QUIT\r\n")
                f.readline()
            self.assertTrue(server.wait_sessions(lambda s: True))
            with open(server.log_path, "rb") as log:
                text = log.read()
            self.assertIn(b"helo=\\u009B2Jcaf\\xE9.example", text)
            self.assertNotIn(b"\xc2\x9b", text)


ADMIN_TOKEN = "operator-only-0123456789"


def admin_token_file():
    f = tempfile.NamedTemporaryFile("w", suffix=".token", delete=False)
    f.write(ADMIN_TOKEN + "\n")
    f.close()
    return f.name


class PostmasterIsTheOperators(unittest.TestCase):
    def test_postmaster_mail_is_seen_only_with_the_admin_token_or_on_the_machine(self):
        with Server("--admin-token-file", admin_token_file()) as server:
            with smtp(server.port) as c:
                c.sendmail("abuse@reporter.example", ["postmaster@" + DOMAIN],
                           message("abuse report", "about your host"))

            def get(path, token=None, method="GET"):
                headers = {"Authorization": "Bearer " + token} if token else {}
                req = urllib.request.Request(server.url + path, method=method, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=30) as res:
                        return res.status
                except urllib.error.HTTPError as e:
                    return e.code

            for path in ("/api/v1/tests/postmaster", "/api/v1/tests/postmaster/deliveries/1",
                         "/api/v1/tests/postmaster/deliveries/1/raw",
                         "/api/v1/tests/postmaster/sessions", "/api/v1/tests/Postmaster"):
                with self.subTest(path=path):
                    self.assertEqual(404, get(path))
                    self.assertEqual(404, get(path, token="operator-only-012345678X"))
                    self.assertEqual(200, get(path, token=ADMIN_TOKEN))
            self.assertEqual(404, get("/api/v1/tests/postmaster", method="DELETE"))
            # On the machine, the command line reads it.
            shown = server.show("postmaster")
            self.assertEqual(1, len(shown["deliveries"]))
        with Server() as server:  # without a token, nobody sees it over HTTP
            req = urllib.request.Request(server.url + "/api/v1/tests/postmaster",
                                         headers={"Authorization": "Bearer "})
            with self.assertRaises(urllib.error.HTTPError) as gone:
                urllib.request.urlopen(req, timeout=30)
            self.assertEqual(404, gone.exception.code)

    def test_a_short_or_unreadable_token_file_is_refused_at_start(self):
        with tempfile.NamedTemporaryFile("w", suffix=".token") as f:
            f.write("short\n")
            f.flush()
            for path, said in ((f.name, b"16 or more printable"), ("/nonexistent/token", b"cannot be read")):
                out = subprocess.run([MXLENS, "serve", "--admin-token-file", path, "--smtp-listen",
                                      "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
                                     capture_output=True, timeout=30)
                self.assertEqual(2, out.returncode, out.stderr)
                self.assertIn(said, out.stderr)


class Recipients(unittest.TestCase):
    def test_catch_all_creates_at_most_n_tests_a_minute_for_one_client(self):
        with Server("--catch-all", "--max-new-tests-per-minute", "5") as server:
            c = smtp(server.port, source="127.0.0.2")
            c.ehlo()
            for i in range(5):  # RCPT then RSET: each one a test, no mail needed
                c.mail("a@example.org")
                self.assertEqual(250, c.rcpt(f"flooded{i}test@{DOMAIN}")[0])
                c.rset()
            c.mail("a@example.org")
            code, text = c.rcpt(f"flooded5test@{DOMAIN}")
            self.assertEqual((code, text[:5]), (450, b"4.7.1"), text)
            self.assertIn(b"at most 5 new test addresses a minute", text)
            # Existing tests, and postmaster, are not new.
            self.assertEqual(250, c.rcpt(f"flooded0test@{DOMAIN}")[0])
            self.assertEqual(250, c.rcpt(f"postmaster@{DOMAIN}")[0])
            c.quit()
            # Another client is not held back.
            with smtp(server.port, source="127.0.0.3") as other:
                other.ehlo()
                other.mail("b@example.org")
                self.assertEqual(250, other.rcpt(f"another0test@{DOMAIN}")[0])
            with self.assertRaises(subprocess.CalledProcessError):  # the refused one was not made
                server.cli("tests", "show", "flooded5test")


    def test_catch_all_creates_a_test_on_first_rcpt_and_plus_tags_share_it(self):
        with Server("--catch-all", "--admin-token-file", admin_token_file()) as server:
            c = smtp(server.port)
            c.sendmail("a@example.org", ["mypipeline1@" + DOMAIN], message("one", "1"))
            c.sendmail("a@example.org", ["MyPipeline1+relay-b@" + DOMAIN], message("two", "2"))
            self.assertEqual(c.docmd("MAIL FROM:<a@example.org>")[0], 250)
            code, text = c.rcpt("no@" + DOMAIN)  # too short to be a test id
            self.assertEqual((code, text[:5]), (550, b"5.1.1"))
            c.quit()
            self.assertEqual(len(server.show("mypipeline1")["deliveries"]), 2)

            # A deleted test stays deleted: its next mail is refused, not a new test.
            req = urllib.request.Request(server.url + "/api/v1/tests/mypipeline1", method="DELETE")
            with urllib.request.urlopen(req, timeout=30) as res:
                self.assertEqual(204, res.status)
            c = smtp(server.port)
            c.ehlo()
            c.mail("a@example.org")
            code, text = c.rcpt("mypipeline1@" + DOMAIN)
            self.assertEqual((code, text), (550, b"5.1.1 <mypipeline1@" + DOMAIN.encode() +
                                            b">: this test address was deleted"))
            self.assertEqual(250, c.rcpt("mypipeline2@" + DOMAIN)[0])
            # Postmaster is always accepted (RFC 5321 §4.5.1), its test deleted or not.
            self.assertEqual(250, c.rcpt("postmaster@" + DOMAIN)[0])
            c.rset()
            req = urllib.request.Request(server.url + "/api/v1/tests/postmaster", method="DELETE",
                                         headers={"Authorization": "Bearer " + ADMIN_TOKEN})
            with urllib.request.urlopen(req, timeout=30) as res:
                self.assertEqual(204, res.status)
            c.mail("a@example.org")
            self.assertEqual(250, c.rcpt("Postmaster@" + DOMAIN)[0])
            c.quit()
            with self.assertRaises(urllib.error.HTTPError) as gone:
                urllib.request.urlopen(server.url + "/api/v1/tests/mypipeline1", timeout=30)
            self.assertEqual(404, gone.exception.code)

    def test_unknown_test_is_550_511_and_postmaster_is_always_accepted(self):
        with Server() as server:
            c = smtp(server.port)
            c.ehlo()
            c.mail("a@example.org")
            code, text = c.rcpt("abcdefgh12345678@" + DOMAIN)
            self.assertEqual((code, text[:5]), (550, b"5.1.1"))
            self.assertEqual(c.rcpt("postmaster")[0], 250)
            c.quit()


class Limits(unittest.TestCase):
    def test_an_idle_client_gets_421_442_and_is_disconnected(self):
        with Server("--idle-timeout", "1") as server:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            f = sock.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220"))
            start = time.time()
            self.assertTrue(f.readline().startswith(b"421 4.4.2"))
            self.assertLess(time.time() - start, 5)
            self.assertEqual(f.readline(), b"")  # closed
            f.close()
            sock.close()
            self.assertTrue(server.wait_sessions(lambda s: s["outcome"] == "timeout"))

    def test_connections_over_the_per_ip_limit_get_421(self):
        with Server("--max-connections-per-ip", "2") as server:
            held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
            for s in held:
                self.assertTrue(s.recv(100).startswith(b"220"))
            extra = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            self.assertTrue(extra.recv(100).startswith(b"421 4.7.0"))
            extra.close()
            # Another client IP on loopback is not affected.
            other = socket.create_connection(("127.0.0.1", server.port),
                                             source_address=("127.0.0.2", 0), timeout=10)
            self.assertTrue(other.recv(100).startswith(b"220"))
            for s in held + [other]:
                s.close()

    def test_an_ipv6_listener_records_the_family(self):
        with Server("--smtp-listen", "[::1]:0") as server:
            port = int(re.findall(r"listening smtp \[::1\]:(\d+)", server.log())[0])
            address = server.new_address()
            c = smtplib.SMTP("::1", port, local_hostname="v6.example", timeout=10)
            c.sendmail("a@example.org", [address], message("v6", "x"))
            c.quit()
            conn = server.show(test_id(address))["deliveries"][0]["connection"]
            self.assertEqual((conn["family"], conn["client_ip"]), ("ipv6", "::1"))

    def test_sessions_without_a_delivery_are_recorded(self):
        with Server() as server:
            c = smtp(server.port, helo="early.example")
            c.ehlo()
            c.quit()
            found = server.wait_sessions(lambda s: s["connection"]["helo"] == "early.example")
            self.assertEqual(found[0]["outcome"], "quit")
            self.assertEqual(found[0]["messages"], 0)


if __name__ == "__main__":
    unittest.main()
