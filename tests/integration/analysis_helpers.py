"""Helpers for the analysis tests: the analyze command and DKIM signing by an independent
implementation (dkimpy's dkimsign)."""
import json
import os
import subprocess

import dnsd
from harness import MXLENS, part_validator, schema_errors

AUTH = part_validator("auth")


def message(sender="a@sender.example", subject="hello", body="body line\r\n", extra=""):
    return (f"From: {sender}\r\nTo: t@mx.test.example\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n"
            f"{extra}\r\n{body}").encode()


def sign(msg, selector, domain="sender.example", key=None, hcanon="relaxed", bcanon="simple",
         alg=None, headers=None):
    """Signs with dkimpy (not the code under test); returns the signed message."""
    key = key or os.path.join(dnsd.KEYS, f"{selector}.pem")
    args = ["dkimsign", "--hcanon", hcanon, "--bcanon", bcanon]
    if alg:
        args += ["--signalg", alg]
    args += [selector, domain, key]
    out = subprocess.run(args, input=msg, capture_output=True, check=True, timeout=30)
    return out.stdout


def analyze(msg, client_ip="127.0.0.2", helo="helo.example", mail_from="x@sender.example"):
    """`mxlens analyze` on the message, against the test DNS server."""
    out = subprocess.run(
        [MXLENS, "analyze", "-", "--client-ip", client_ip, "--helo", helo, "--mail-from",
         mail_from, "--dns", dnsd.shared().address, "--hostname", "mx.test.example"],
        input=msg, capture_output=True, check=True, timeout=60)
    report = json.loads(out.stdout)
    errors = schema_errors(report)
    if errors:
        raise AssertionError(f"the report breaks report.schema.json: {errors}")
    return report
