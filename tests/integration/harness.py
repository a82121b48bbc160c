"""Runs the real mxlens binary on loopback for integration tests.

The server listens on 127.0.0.1 port 0 (the port it picked is read from its log), keeps its data
in a temporary directory, and is stopped by the test (or killed at exit). Nothing here talks to
any address outside 127.0.0.0/8.
"""
import atexit
import json
import os
import re
import signal
import socket
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

import jsonschema

import dnsd

MXLENS = os.environ.get("MXLENS_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "app", "mxlens")
DOMAIN = "mx.test.example"
# An ASan+UBSan build (-DMXLENS_SANITIZE=ON; tests/CMakeLists.txt says which).
SANITIZED = os.environ.get("MXLENS_SANITIZE") == "1"

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "report.schema.json")
with open(SCHEMA_PATH) as f:
    SCHEMA = json.load(f)


def part_validator(name):
    """A validator for one top-level property of the report schema ($defs resolved)."""
    schema = dict(SCHEMA["properties"][name])
    schema["$defs"] = SCHEMA["$defs"]
    return jsonschema.Draft202012Validator(schema)


# The schema's "$id" is a bare name; Debian's jsonschema would resolve "#/$defs/..." against it as a
# URL, so validation uses the schema without it (the definitions are local).
REPORT = jsonschema.Draft202012Validator({k: v for k, v in SCHEMA.items() if k != "$id"})


def schema_errors(report):
    """What report.schema.json finds wrong with a report."""
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in REPORT.iter_errors(report)]


class Server:
    """mxlens serve on loopback. Its resolver asks the test DNS server (dnsd) only."""

    def __init__(self, *extra, data_dir=None, dns=True, env=None):
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mxlens-it-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.extra = list(extra)
        self.env = dict(os.environ, **(env or {}))
        if dns and not any(a.startswith("--dns") for a in self.extra):
            self.extra += ["--dns", dnsd.shared().address, "--dns-timeout", "2"]
        if not any(a.startswith("--workers") for a in self.extra):
            self.extra += ["--workers", "2"]
        # The greeting is not held back unless a test asks (test_delivery.GreetingPause): the
        # suite makes thousands of connections.
        if not any(a.startswith("--greet-pause") for a in self.extra):
            self.extra += ["--greet-pause", "0"]
        self.proc = None
        self.port = None
        self.log_path = os.path.join(data_dir, "server.log")

    def start(self):
        # The ports are read from what this start writes: a restart on the same data directory
        # appends to the log of the runs before it.
        begins = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [MXLENS, "serve", "--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                 "--hostname", DOMAIN,
                 "--data-dir", self.data_dir, *self.extra],
                stdout=log, stderr=log, env=self.env)
        atexit.register(self.stop)  # a test that fails before its cleanup leaves nothing running
        deadline = time.time() + 20
        while time.time() < deadline:
            text = self.log()[begins:]
            ports = re.findall(r"listening smtp 127\.0\.0\.1:(\d+)", text)
            http = re.findall(r"listening http 127\.0\.0\.1:(\d+)", text)
            if ports and http:
                self.port = int(ports[-1])
                self.http_port = int(http[-1])
                self.url = f"http://127.0.0.1:{self.http_port}"
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("mxlens exited: " + text)
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("mxlens did not start: " + self.log())

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        self.stop()
        # In a sanitizer build, a report in the server's log (its workers' too) fails the test.
        findings = [line for line in self.log().splitlines()
                    if "Sanitizer" in line or "runtime error:" in line]
        if self._tmp:
            self._tmp.cleanup()
        if findings:
            raise AssertionError("sanitizer reports in the server log:\n" + "\n".join(findings[:20]))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # The command line of mxlens against this server's data directory.
    def cli(self, *args, binary=False):
        out = subprocess.run([MXLENS, *args, "--data-dir", self.data_dir],
                             capture_output=True, check=True, timeout=30)
        return out.stdout if binary else out.stdout.decode()

    def new_address(self, *flags):
        return self.cli("tests", "new", *flags).strip()

    def show(self, test_id):
        """The test and its reports; every report is checked against report.schema.json on the
        way."""
        test = json.loads(self.cli("tests", "show", test_id))
        for report in test["deliveries"]:
            errors = schema_errors(report)
            if errors:
                raise AssertionError(f"report {test_id}/{report['delivery']}: {errors}")
        return test

    def raw(self, test_id, n):
        return self.cli("tests", "raw", test_id, str(n), binary=True)

    def workers(self):
        """The pids of the server's analysis workers (its child processes)."""
        pid = self.proc.pid
        children = set()
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children.update(int(c) for c in f.read().split())
        return sorted(children)

    def sessions(self, client_ip=None):
        args = ["sessions"] + (["--client-ip", client_ip] if client_ip else [])
        return json.loads(self.cli(*args))

    def wait_sessions(self, predicate, timeout=10):
        """Sessions are stored when they end; wait until one matches."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [s for s in self.sessions() if predicate(s)]
            if found:
                return found
            time.sleep(0.1)
        return []


class ServerCase(unittest.TestCase):
    """A test class sharing one server; `server_args` and `server_env` configure it."""
    server_args = ()
    server_env = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_args, env=cls.server_env).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()


def test_id(address):
    return address.split("@")[0]


def client_context(minimum=None, maximum=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def message(subject, body, sender="sender@example.org", to="x@" + DOMAIN):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@example.org>\r\n\r\n{body}\r\n").encode()


def smtp(port, helo="client.example", source=None):
    """An SMTP client; `source` is the loopback address it connects from (127.0.0.2, ...)."""
    return smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=60,
                        source_address=(source, 0) if source else None)


def starttls_socket(port, source):
    """A raw client from `source` that said EHLO and STARTTLS and read the 220: its socket is
    where the ClientHello belongs."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    with sock.makefile("rb") as f:
        f.readline()
        sock.sendall(b"EHLO client.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        if not f.readline().startswith(b"220"):
            raise AssertionError("STARTTLS was not accepted")
    return sock


def starttls_then(port, source, instead, wait_close=True):
    """A raw client from `source`: EHLO, STARTTLS, then `instead` where the ClientHello belongs;
    with `wait_close`, returns once the server has closed the connection."""
    with starttls_socket(port, source) as sock:
        sock.sendall(instead)
        while wait_close and sock.recv(65536):
            pass