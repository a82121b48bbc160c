"""A real MTA whose STARTTLS with mxlens fails and which then sends the message in plaintext by
itself gets `tls.fallback` fail, with the failed session in `tls.failed_handshakes` (issue 15).

The MTA is Postfix 3.7 (Debian's), run as a private instance: its own main.cf and master.cf, queue,
data directory and log file in a temporary directory (`postfix -c`, `sendmail -C`); the machine's
/etc/postfix is only read. It listens on no port at all (the message is handed to it with
`sendmail`), and its one route is the mxlens this test started, from 127.0.0.23. Its client is at
the opportunistic level `may` and offers only NULL-encryption suites over TLS 1.2, which mxlens
never accepts, so every handshake fails with mxlens's `handshake_failure` alert.

Postfix decides the fallback itself: at level `may` it goes on in plaintext on the same host at
once after a failed handshake, but only for a message that has been queued for at least
minimal_backoff_time (2 s here); a newer one is deferred first. So the first attempt is usually
deferred, and the retry a few seconds later fails TLS again and delivers in plaintext on the next
connection. The test accepts one or more failed handshakes and checks, from Postfix's own
log, that each was a failed STARTTLS and that the attempt which delivered had just failed TLS,
and, from the report, that every one of them is recorded with its session and class.
"""
import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from harness import ServerCase, test_id

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
SENDER = "127.0.0.23"  # the address Postfix's client connects from
HELO = "relay.example"

# Only the services a message handed to sendmail needs on its way out through smtp (and showq, for
# `postqueue -c DIR -p` when looking into a failure); no chroot, no listener (no smtpd).
MASTER_CF = """\
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
smtp      unix  - - n -     - smtp
error     unix  - - n -     - error
retry     unix  - - n -     - error
scache    unix  - - n -     1 scache
tlsmgr    unix  - - n 1000? 1 tlsmgr
showq     unix  n - n -     - showq
postlog   unix-dgram n - n - 1 postlogd
"""

# What makes the handshake fail: TLS 1.2 only (TLS 1.3 suites cannot be restricted in 3.7) and
# only the NULL suites (grade "null"), with OpenSSL's security level lowered so that it offers
# them at all.
FAILING_TLS = {
    "smtp_tls_protocols": ">=TLSv1.2, <=TLSv1.2",
    "smtp_tls_ciphers": "null",
    "tls_null_cipherlist": "eNULL:!aNULL:@SECLEVEL=0",
}


def main_cf(top, mxlens_port, tls):
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": f"{top}/queue",
        # Relative to the queue directory, where every Postfix process works: the master opens
        # its lock file there as the postfix user, which may not search / (in the roots that
        # ../shared/tools/fresh-debian makes for CI, / is drwx------).
        "data_directory": "../data",
        "maillog_file_prefixes": top,
        "maillog_file": f"{top}/postfix.log",
        "myhostname": HELO,
        "myorigin": HELO,
        "mydestination": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "alias_maps": "",
        "alias_database": "",
        "notify_classes": "",
        # Everything goes to this test's mxlens, by address: no DNS.
        "relayhost": f"[127.0.0.1]:{mxlens_port}",
        "smtp_bind_address": SENDER,
        "smtp_helo_name": HELO,
        "smtp_dns_support_level": "disabled",
        "smtp_host_lookup": "native",
        # Opportunistic TLS, as most senders run it.
        "smtp_tls_security_level": "may",
        "smtp_tls_loglevel": "1",
        # A deferred message is tried again 1 to 3 s later. Not after 1 s, the smallest Postfix
        # allows: qmgr's deferred-queue scan could then find the message while the smtp process
        # still has it open ("skipped, still being delivered"), which postpones it by 60 s.
        "minimal_backoff_time": "2s",
        "maximal_backoff_time": "4s",
        "queue_run_delay": "1s",
        **tls,
    }
    return "".join(f"{k} = {v}\n" for k, v in settings.items())


def wait_for(what, probe, timeout, detail=lambda: ""):
    """Polls `probe` until it returns something true, at most `timeout` seconds; on a time-out
    the failure says `detail()`."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail()}")
        time.sleep(0.1)


class PrivatePostfix:
    """A Postfix instance living in one directory; `stop` ends its master and its daemons."""

    def __init__(self, top, mxlens_port, tls):
        os.chmod(top, 0o755)  # its daemons run as the postfix user and must reach the queue
        self.conf = os.path.join(top, "conf")
        self.log_path = os.path.join(top, "postfix.log")
        self.pid_file = os.path.join(top, "queue", "pid", "master.pid")
        os.mkdir(self.conf)
        os.mkdir(os.path.join(top, "queue"))  # `postfix start` makes what goes inside
        os.mkdir(os.path.join(top, "data"))
        os.chown(os.path.join(top, "data"), *postfix_ids())
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main_cf(top, mxlens_port, tls))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF)

    def start(self):
        out = subprocess.run([POSTFIX, "-c", self.conf, "start"], capture_output=True, text=True,
                             timeout=30)
        if out.returncode != 0:
            raise AssertionError(f"postfix start failed: {out.stdout}{out.stderr}{self.log()}")

    def stop(self):
        if not os.path.exists(self.pid_file):
            return
        with open(self.pid_file) as f:
            pid = int(f.read().split()[0])
        subprocess.run([POSTFIX, "-c", self.conf, "stop"], capture_output=True, timeout=30)
        try:
            wait_for("Postfix's master to exit", lambda: not os.path.exists(f"/proc/{pid}"), 10)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)

    def sendmail(self, sender, recipient, message):
        subprocess.run([SENDMAIL, "-C", self.conf, "-f", sender, recipient], input=message,
                       check=True, capture_output=True, timeout=30)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def postfix_ids():
    entry = pwd.getpwnam("postfix")
    return entry.pw_uid, entry.pw_gid


def failed_sessions(server, count):
    """The sessions from SENDER whose STARTTLS failed, newest first, once there are `count`
    (sessions are stored when they end)."""
    found = [s for s in server.sessions(SENDER) if s["outcome"] == "tls_failed"]
    return found if len(found) >= count else None


class PostfixFallsBackToPlaintext(ServerCase):
    def test_postfix_failing_starttls_and_sending_in_plaintext_fails_tls_fallback(self):
        for tool in (POSTFIX, SENDMAIL):
            if not os.access(tool, os.X_OK):
                self.fail(f"{tool} is missing: bash scripts/install-deps --tests installs postfix")
        began = time.time()
        tmp = tempfile.TemporaryDirectory(prefix="mxlens-postfix-")
        self.addCleanup(tmp.cleanup)
        postfix = PrivatePostfix(tmp.name, self.server.port, FAILING_TLS)
        self.addCleanup(postfix.stop)  # runs before the directory goes (cleanups are LIFO)
        postfix.start()

        address = self.server.new_address()
        postfix.sendmail("pf@example.org", address,
                         (f"From: pf@example.org\nTo: {address}\nSubject: fallback\n"
                          f"Message-ID: <{time.time_ns()}@example.org>\n\nover Postfix\n").encode())
        tid = test_id(address)
        report = wait_for("the delivery's report", lambda: self.server.show(tid)["deliveries"], 40,
                          postfix.log)[0]
        port = re.escape(f"127.0.0.1[127.0.0.1]:{self.server.port}")
        sent = wait_for("Postfix to log the delivery",
                        lambda: re.search(rf"postfix/smtp\[\d+\]: (\w+): to=<{re.escape(address)}>, "
                                          rf"relay={port}, .*status=sent \(250 ", postfix.log()), 10)
        qid = sent.group(1)
        log = postfix.log()

        # Postfix's side: each connection failed STARTTLS, nothing was ever encrypted, and the
        # attempt that delivered is the one that had just failed TLS: it went on in plaintext.
        handshakes = re.findall(rf"postfix/smtp\[\d+\]: SSL_connect error to {port}", log)
        self.assertGreaterEqual(len(handshakes), 1, log)
        # Refused by mxlens (its handshake_failure alert), not given up by Postfix's own OpenSSL.
        self.assertEqual(len(handshakes), log.count("alert handshake failure"), log)
        self.assertNotIn("TLS connection established", log)
        attempts = [line.split(f"{qid}: ", 1)[1] for line in log.splitlines()
                    if re.search(rf"postfix/smtp\[\d+\]: {qid}: ", line)]
        self.assertGreaterEqual(len(attempts), 2, log)
        self.assertTrue(attempts[-1].startswith(f"to=<{address}>"), attempts)
        self.assertEqual("Cannot start TLS: handshake failure", attempts[-2], attempts)
        for earlier in attempts[:-2]:
            self.assertIn("status=deferred (Cannot start TLS: handshake failure)", earlier)
        self.assertEqual(len(handshakes), len(attempts) - 1, attempts)

        # mxlens's side: plaintext after a failed handshake, each failure on record.
        self.assertEqual((SENDER, HELO), (report["connection"]["client_ip"],
                                          report["connection"]["helo"]))
        tls = report["tls"]
        self.assertTrue(tls["offered"])
        self.assertFalse(tls["used"])
        # Postfix's failed connections as mxlens stored them, newest first.
        sessions = wait_for(f"{len(handshakes)} failed sessions from {SENDER}",
                            lambda: failed_sessions(self.server, len(handshakes)), 10)
        failed = tls["failed_handshakes"]
        seen = (f"the delivery's session {report['session_id']} started at "
                f"{report['connection']['started_at']}; the failed sessions: "
                + ", ".join(f"{s['id']} failed at {s['tls']['failed_handshakes'][-1]['at']}"
                            for s in reversed(sessions))
                + f"; in the report: {[(f['session'], f['at']) for f in failed]}")
        fallback = next(c for c in report["checks"] if c["id"] == "tls.fallback")
        self.assertEqual("fail", fallback["status"], f"{fallback['summary']}\n{seen}")
        # The connection just before the plaintext one, and every earlier one, oldest first.
        self.assertTrue(failed, seen)
        self.assertEqual(sessions[0]["id"], failed[-1]["session"], seen)
        self.assertEqual([s["id"] for s in reversed(sessions)], [f["session"] for f in failed], seen)
        self.assertNotIn(report["session_id"], [f["session"] for f in failed])
        for f in failed:
            print(f"\nmxlens recorded Postfix's failed handshake in session {f['session']}: class "
                  f"{f['class']!r}, reason {f['reason']!r}, {f['seconds_before']} s before",
                  file=sys.stderr)
            self.assertEqual("cipher", f["class"])
            self.assertTrue(f["reason"])
            self.assertEqual(SENDER, f["client_ip"])
            self.assertGreaterEqual(f["seconds_before"], 0)
            self.assertLessEqual(f["seconds_before"], time.time() - began)
            # The offer is the one configured above: NULL suites only.
            offered = [c for c in f["client_hello"]["ciphers"] if "SCSV" not in c]
            self.assertTrue(offered and all("NULL" in c for c in offered), offered)
        self.assertEqual(failed[-1]["session"], fallback["evidence"]["last"]["session"])


if __name__ == "__main__":
    unittest.main()
