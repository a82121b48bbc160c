"""Golden cases: one folder each under tests/cases/, read by this one runner.

A case folder holds
  message.eml  the message; "{date}" becomes the arrival time, "{date-3d}" three days before
  case.json    {"client_ip", "helo", "mail_from", "bulk",
               "dkim": [{"selector", "domain", "key", "algorithm", "canonicalization",
                         "headers", "length", "publish"}],   signed by dkimpy, in order
               "after_signing": [[old, new], ...],            edits made after signing
               "append_after_signing": "text",
               "arc": [step, ...],  after all of the above, in order, each one of
                 {"seal": {"selector", "domain", "srv_id", "results", "cv", "key", "headers"}}:
                   an intermediary's Authentication-Results (srv_id; results, and arc=cv when
                   cv is given) added on top, then its ARC set made by dkimpy's arc_sign
                   (key records published as for "dkim");
                 {"edit": [old, new]}: a change made in transit;
                 {"drop": header-name, "instance": n}: that ARC header of set n removed
               "expect": {"check.id": "status", ...},
               "spf": {"field": value, ...},  fields of the report's auth.spf (result, lookups,
                                              decided_by, libspf2, ...), compared as they are
               "received_chain": [{"from", "by", "with", "tls", "at"}, ...],  the report's
                                              received_chain, compared as it is
               "summaries": {"check.id": "text", ...},  the start of a check's summary
               "report": {"auth.dmarc.from_domain": value, "auth.dkim.0.domain": value, ...},
                                              any member of the report, named by its path
                                              (array items by index), compared as it is
               "providers": {"gmail": {"verdict": ..., "reply_starts": ..., "bulk_verdict": ...}}}
  zone.conf    the DNS data it needs, for dnsmasq (key records for "dkim" entries are added)
  session.json (optional) a RECORDED SMTP session: the "connection", "tls", "envelope" and "data"
               objects of the report `mxlens serve` stored when a real client delivered this case's
               message to it on loopback, written by tests/cases/record exactly as the server
               wrote them, except that the keys the analysis adds to "connection" (ptr,
               ptr_confirmed, fcrdns, iprev, helo_dns, helo_addresses) are left out. Its
               tls.failed_handshakes is the server's too: every failed TLS handshake from the
               client's address in the 15 minutes before the delivery's connection (class,
               session, seconds_before, reason, client_hello), the recorded client's earlier
               connections included. It is passed, as it is, to `mxlens analyze --session`; without
               it the message is analyzed as a file and the transport and TLS checks say "skip".
               Its client_ip, helo and mail_from must be the case's (the runner checks). A session
               is never written by hand: case.json has no "session" member (the runner refuses
               one).

To (re-)record the sessions, with the mxlens binary of this tree (MXLENS_BIN, or build/app/mxlens):
  /usr/bin/python3 tests/cases/record            every case the recorder has a client for
  /usr/bin/python3 tests/cases/record <case>     one case
then commit the changed session.json files. The test run itself never records: it reads the
committed files. tests/cases/record says which client, settings and source address each case is
recorded with.

Expected statuses are written from the RFCs and the providers' published rules.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from email.utils import formatdate

import dkim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # dnsd and harness, from anywhere
import dnsd  # noqa: E402
from harness import MXLENS, schema_errors  # noqa: E402

CASES = os.path.join(os.path.dirname(__file__), "..", "cases")
CHECKS_MD = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "CHECKS.md")
# Keys the analysis adds to the report's "connection"; a recorded session.json leaves them out.
ANALYSIS_CONNECTION_KEYS = ("ptr", "ptr_confirmed", "fcrdns", "iprev", "helo_dns", "helo_addresses")


def catalog_ids():
    """Every check id CHECKS.md defines, in its order."""
    with open(CHECKS_MD) as f:
        text = f.read()
    ids = re.findall(r"^\| `([a-z0-9]+(?:\.[a-z0-9_]+)+)` \|", text, re.M)
    ids += re.findall(r"`(provider\.[a-z]+)`", text)
    return list(dict.fromkeys(ids))


def key_record(key_name):
    path = os.path.join(dnsd.KEYS, key_name)
    if key_name.endswith(".key"):  # dknewkey's ed25519 seed; its public half is in the .dns file
        with open(path[:-4] + ".dns") as f:
            return f.read().strip()
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def txt_line(name, value):
    parts = [value[i:i + 250] for i in range(0, len(value), 250)] or [""]
    return f"txt-record={name}," + ",".join(f'"{p}"' for p in parts)


def sign(msg, entry):
    with open(os.path.join(dnsd.KEYS, entry.get("key", "rsa2048.pem")), "rb") as f:
        key = f.read()
    algorithm = entry.get("algorithm", "rsa-sha256").encode()
    headers = [h.encode() for h in entry["headers"]] if "headers" in entry else None
    hc, bc = entry.get("canonicalization", "relaxed/relaxed").split("/")
    args = dict(canonicalize=(hc.encode(), bc.encode()), signature_algorithm=algorithm,
                include_headers=headers, length=entry.get("length", False))
    if "timestamp_offset" in entry:
        real = time.time
        dkim.time.time = lambda: real() + entry["timestamp_offset"]
        try:
            sig = dkim.sign(msg, entry["selector"].encode(), entry["domain"].encode(), key, **args)
        finally:
            dkim.time.time = real
    else:
        sig = dkim.sign(msg, entry["selector"].encode(), entry["domain"].encode(), key, **args)
    return sig + msg


def load_case(name):
    folder = os.path.join(CASES, name)
    with open(os.path.join(folder, "case.json")) as f:
        case = json.load(f)
    if "session" in case:
        raise AssertionError(f"{name}: case.json has a hand-written \"session\"; record one "
                             f"instead: /usr/bin/python3 tests/cases/record {name}")
    return folder, case


def prepared_message(folder, case):
    """The case's message as it is analyzed (and as tests/cases/record delivers it)."""
    with open(os.path.join(folder, "message.eml"), "rb") as f:
        msg = f.read()
    now = time.time()
    msg = msg.replace(b"{date}", formatdate(now).encode())
    msg = msg.replace(b"{date-3d}", formatdate(now - 3 * 86400).encode())
    msg = re.sub(rb"\r?\n", b"\r\n", msg)
    for entry in case.get("dkim", []):
        msg = sign(msg, entry)
    for old, new in case.get("after_signing", []):
        msg = msg.replace(old.encode(), new.encode())
    msg += case.get("append_after_signing", "").encode()
    for step in case.get("arc", []):
        msg = arc_step(msg, step)
    return msg


def arc_step(msg, step):
    """One step of an ARC case: a forwarder's seal, an edit in transit, or a removed header."""
    if "edit" in step:
        old, new = step["edit"]
        if old.encode() not in msg:
            raise AssertionError(f"arc edit: {old!r} is not in the message")
        return msg.replace(old.encode(), new.encode(), 1)
    if "drop" in step:
        head, sep, body = msg.partition(b"\r\n\r\n")
        lines = re.split(rb"\r\n(?![ \t])", head)
        wanted = re.compile(rb"(?i)^" + re.escape(step["drop"].encode()) +
                            rb"\s*:.*?\bi\s*=\s*" + str(step["instance"]).encode() + rb"\s*;",
                            re.S)
        kept = [line for line in lines if not wanted.match(line)]
        if len(kept) != len(lines) - 1:
            raise AssertionError(f"arc drop: no single {step['drop']} i={step['instance']}")
        return b"\r\n".join(kept) + sep + body
    seal = step["seal"]
    with open(os.path.join(dnsd.KEYS, seal.get("key", "rsa2048.pem")), "rb") as f:
        key = f.read()
    results = seal.get("results", "none")
    if "cv" in seal:
        results += f"; arc={seal['cv']}"
    msg = f"Authentication-Results: {seal['srv_id']}; {results}\r\n".encode() + msg
    headers = [h.encode() for h in seal["headers"]] if "headers" in seal else None
    arc_set = dkim.arc_sign(msg, seal["selector"].encode(), seal["domain"].encode(), key,
                            seal["srv_id"].encode(), include_headers=headers)
    if not arc_set:
        raise AssertionError(f"arc seal: dkimpy made no ARC set for {seal['srv_id']}")
    return b"".join(arc_set) + msg


def write_zone(folder, case, path):
    """The dnsmasq configuration of the case: its zone.conf and its DKIM keys."""
    with open(path, "w") as out:
        out.write("local=/example/\nlocal=/127.in-addr.arpa/\n")
        zone_file = os.path.join(folder, "zone.conf")
        if os.path.exists(zone_file):
            with open(zone_file) as f:
                out.write(f.read() + "\n")
        seals = [step["seal"] for step in case.get("arc", []) if "seal" in step]
        for entry in case.get("dkim", []) + seals:
            if entry.get("publish", True):
                out.write(txt_line(f"{entry['selector']}._domainkey.{entry['domain']}",
                                   key_record(entry.get("key", "rsa2048.pem"))) + "\n")


def recorded_session(name, folder, case):
    """The path of the session file to pass to --session, or None without session.json."""
    path = os.path.join(folder, "session.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        session = json.load(f)
    connection, envelope = session["connection"], session["envelope"]
    recorded = (connection["client_ip"], connection["helo"], envelope["mail_from"])
    wanted = (case["client_ip"], case.get("helo", ""), case.get("mail_from", ""))
    if recorded != wanted:
        raise AssertionError(f"{name}: session.json was recorded with client_ip, helo, mail_from "
                             f"{recorded}, case.json says {wanted}; re-record: "
                             f"/usr/bin/python3 tests/cases/record {name}")
    added = sorted(set(connection) & set(ANALYSIS_CONNECTION_KEYS))
    if added:
        raise AssertionError(f"{name}: session.json has the analysis' connection keys {added}")
    if os.path.exists(os.path.join(folder, "earlier_sessions.json")):
        # The runner once merged these into the session; the server now lists the earlier
        # failures in the delivery's own tls.failed_handshakes, and the recording has them.
        raise AssertionError(f"{name}: earlier_sessions.json is no longer read; re-record: "
                             f"/usr/bin/python3 tests/cases/record {name}")
    return path


def run_case(name):
    folder, case = load_case(name)
    msg = prepared_message(folder, case)

    with tempfile.TemporaryDirectory(prefix="mxlens-case-") as tmp:
        zone = os.path.join(tmp, "zone.conf")
        write_zone(folder, case, zone)
        server = dnsd.DnsServer([zone]).start()
        try:
            message_path = os.path.join(tmp, "message.eml")
            with open(message_path, "wb") as f:
                f.write(msg)
            args = [MXLENS, "analyze", message_path, "--client-ip", case["client_ip"],
                    "--helo", case.get("helo", ""), "--mail-from", case.get("mail_from", ""),
                    "--dns", server.address, "--dns-timeout", "2", "--hostname", "mx.test.example"]
            session_path = recorded_session(name, folder, case)
            if session_path:
                args += ["--session", session_path]
            if case.get("bulk"):
                args.append("--bulk")
            out = subprocess.run(args, capture_output=True, timeout=120)
            if out.returncode != 0:
                raise AssertionError(f"{name}: mxlens analyze failed: {out.stderr.decode()}")
            if "arc" in case:
                case = dict(case, dkimpy_arc_cv=dkimpy_arc_cv(msg, server))
            return case, json.loads(out.stdout)
        finally:
            server.stop()


def dkimpy_arc_cv(msg, server):
    """The chain's cv as dkimpy's arc_verify (an independent validator) computes it, with the
    case's DNS server; its "chain terminated" (None, for a carried cv=fail) is a fail."""
    def txt(name, timeout=5):
        records = server.txt(name.decode().rstrip("."))
        return b"".join(records[0]) if records else None
    cv, _, _ = dkim.arc_verify(msg, dnsfunc=txt)
    return cv.decode() if cv else "fail"


def report_member(report, path):
    """The member of the report at a dotted path ("auth.dkim.0.domain"); KeyError without one."""
    value = report
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def case_names():
    return sorted(d for d in os.listdir(CASES) if os.path.isdir(os.path.join(CASES, d)))


class GoldenCases(unittest.TestCase):
    def test_every_case(self):
        for name in case_names():
            with self.subTest(case=name):
                case, report = run_case(name)
                self.assertEqual([], schema_errors(report), name)
                statuses = {c["id"]: c["status"] for c in report["checks"]}
                # Every id of CHECKS.md is in the report, and nothing else (§ "skip" when it does
                # not apply).
                self.assertEqual(sorted(catalog_ids()), sorted(statuses), name)
                got = {cid: statuses.get(cid) for cid in case["expect"]}
                self.assertEqual(case["expect"], got, name)
                if "received_chain" in case:
                    self.assertEqual(case["received_chain"], report["received_chain"], name)
                summaries = {c["id"]: c["summary"] for c in report["checks"]}
                for cid, start in case.get("summaries", {}).items():
                    self.assertTrue(summaries[cid].startswith(start), f"{name} {cid}: {summaries[cid]!r}")
                if "arc" in case:  # the chain's verdict is the independent validator's too
                    self.assertEqual(case["dkimpy_arc_cv"], report["auth"]["arc"]["cv"], name)
                spf = report["auth"]["spf"]
                want = case.get("spf", {})
                self.assertEqual(want, {k: spf.get(k) for k in want}, f"{name}: {spf}")
                want = case.get("report", {})
                self.assertEqual(want, {k: report_member(report, k) for k in want}, name)
                for provider, want in case.get("providers", {}).items():
                    have = report["providers"][provider]
                    for key, value in want.items():
                        if key.endswith("_starts"):
                            field = key[: -len("_starts")]
                            self.assertTrue(have[field].startswith(value),
                                            f"{name} {provider} {field}: {have[field]!r}")
                        else:
                            self.assertEqual(value, have[key], f"{name} {provider} {key}")

    def test_each_scored_check_has_a_passing_and_a_failing_case(self):
        passes, problems = set(), set()
        for name in case_names():
            with open(os.path.join(CASES, name, "case.json")) as f:
                for cid, status in json.load(f)["expect"].items():
                    (passes if status == "pass" else problems if status in ("warn", "fail") else set()).add(cid)
        with open(CHECKS_MD) as f:
            text = f.read()
        for cid in catalog_ids():
            weight = re.search(rf"^\| `{re.escape(cid)}` \|.*\| ([0-9.]+) \|$", text, re.M)
            if not weight or float(weight.group(1)) == 0:
                continue  # info checks: nothing to pass or fail
            with self.subTest(check=cid):
                self.assertIn(cid, passes, "no case makes it pass")
                self.assertIn(cid, problems, "no case makes it warn or fail")


if __name__ == "__main__":
    unittest.main()
