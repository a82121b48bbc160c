"""Stay available under attack, and lose nothing acknowledged when killed.

Soak: for a minute, honest senders (STARTTLS, from 127.0.200.2) and honest visitors (/healthz, a
test's page, its JSON API, from 127.0.201.2) are timed while an attacker, in a process of its own
and from other loopback networks, at the same time: trickles SMTP connections (an octet of a NOOP
every 3 s) to hold the slots, floods connect-and-close, sends junk SMTP commands, opens and closes
event streams and long polls, holds slow HTTP requests that never end, and spams test creation.
The server runs with --max-connections 300 (1,000 by default) so that the attacker's 400
trickled connections fill it and put it under stress; the HTTP limits are the defaults (256
connections, 32 per client, 8 long polls and event streams per client), which the attacker's
360 HTTP connections exceed. Proven: every honest delivery is answered 250 within 5 s, then found
with its report and the very bytes sent; every honest HTTP request is answered 200 within 1 s;
the server is alive at the end; beyond the honest messages and their reports (and 16 kB each
for the database's own), the database grows by at most 2 MB a minute of attack; and the attack
did bite (cut-off trickles, 503s, 429s).

Kill -9: deliveries from four threads while, at points a seeded generator picks (the seed is
printed; MXLENS_SOAK_SEED repeats a run), the server or one of its analysis workers is killed with
SIGKILL. The server is started again on the same data directory. After every round each delivery
that got its 250 is there, with a report answered 250 and its raw bytes identical; a worker's
death fails no delivery; a killed server leaves no worker behind.

bench/soak runs the same for longer (MXLENS_SOAK_SECONDS and MXLENS_SOAK_ROUNDS set the lengths
here). On the sanitizer build the latency bounds are doubled: it runs a few times slower.
"""
import collections
import glob
import http.client
import json
import multiprocessing
import os
import random
import re
import resource
import selectors
import signal
import smtplib
import socket
import sqlite3
import tempfile
import threading
import time
import unittest

from harness import SANITIZED, Server, client_context, test_id

SOAK_SECONDS = float(os.environ.get("MXLENS_SOAK_SECONDS", "60"))
KILL_ROUNDS = int(os.environ.get("MXLENS_SOAK_ROUNDS", "6"))
SERVER_ARGS = ("--max-connections", "300")
SLOWER = 2 if SANITIZED else 1
DELIVERY_BOUND = 5.0 * SLOWER  # seconds from connect to the 250 after DATA
HTTP_BOUND = 1.0 * SLOWER      # seconds from connect to the whole response
DB_PER_DELIVERY = 16_000       # octets an honest delivery may add beyond its bytes and report
# Octets a minute of the attack may add: sessions that said something are each kept whole.
DB_PER_ATTACK_MINUTE = 2_000_000

HONEST_SENDER = "127.0.200.2"
HONEST_VISITOR = "127.0.201.2"
# The attacker's addresses, in networks (/24s) of their own.
TRICKLERS = [f"127.0.{10 + n}.{2 + i}" for n in range(8) for i in range(5)]  # 40 in 8 networks
TRICKLE_CONNECTIONS = 400
TRICKLE = 3.0  # seconds between octets: a NOOP line takes 18 s
JUNKERS = [f"127.0.20.{2 + i}" for i in range(3)]
JUNK_CONNECTIONS = 12
FLOODERS = [f"127.0.1.{1 + i}" for i in range(10)]
FLOOD_RATE = 150  # connect-and-close a second
WAITERS = [f"127.0.30.{2 + i}" for i in range(12)]  # HTTP: event streams, long polls, slow requests
STREAMS, POLLS, SLOW = 4, 6, 20  # per address: 10 waits (8 allowed) and 20 slow requests
SPAMMERS = [f"127.0.40.{2 + i}" for i in range(5)]
SPAM_RATE = 10  # POST /api/v1/tests a second
JUNK = [b"BOGUS\r\n", b"NOOP\r\n", b"RSET\r\n", b"VRFY root\r\n", b"HELP\r\n",
        b"MAIL FROM:<no-bracket\r\n", b"RCPT TO:<x@elsewhere.example>\r\n", b"\x16\x03\x01junk\r\n",
        b"DATA\r\n", b"AUTH PLAIN AAAA\r\n"]


def database_bytes(data_dir):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data_dir, "mxlens.db*")))


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values):
    """p50, p99 and max of a list of seconds, in milliseconds."""
    return {"n": len(values), "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000, "max_ms": max(values, default=float("nan")) * 1000}


# --- the attacker -------------------------------------------------------------------------------

class Holder:
    """One selector loop holding the attacker's long-lived connections: trickled SMTP commands,
    junk SMTP commands, event streams, long polls and slow HTTP requests. A connection that ends
    is opened again (at once, or a second later when it was refused)."""

    def __init__(self, smtp_port, http_port, test, stop, counts):
        self.smtp_port, self.http_port, self.test = smtp_port, http_port, test
        self.stop, self.counts = stop, counts
        self.selector = selectors.DefaultSelector()
        self.reopen = []  # (when, kind, source)

    def open(self, kind, source):
        port = self.smtp_port if kind in ("trickle", "junk") else self.http_port
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((source, 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            self.counts["connect errors"] += 1
            self.reopen.append((time.time() + 1, kind, source))
            return
        now = time.time()
        state = {"kind": kind, "source": source, "next": now + random.uniform(0, TRICKLE),
                 "sent": 0, "first": b"", "until": now + random.uniform(1, 4)}
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if kind in ("stream", "poll", "slow")
                                         else 0)
        self.selector.register(s, events, state)

    def close(self, key, again_in=0.0):
        self.selector.unregister(key.fileobj)
        key.fileobj.close()
        d = key.data
        self.reopen.append((time.time() + again_in, d["kind"], d["source"]))

    def request(self, kind):
        if kind == "stream":
            return f"GET /api/v1/tests/{self.test}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        if kind == "poll":
            return (f"GET /api/v1/tests/{self.test}/wait?after=1000000&timeout=300 HTTP/1.1\r\n"
                    "Host: x\r\n\r\n").encode()
        return b""

    def readable(self, key):
        d = key.data
        try:
            data = key.fileobj.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and len(d["first"]) < 16:
            d["first"] += data[:16]
        first = d["first"]
        if d["kind"] == "trickle" and b"421 4.4.2" in data:
            self.counts["trickles cut off"] += 1
        if d["kind"] == "junk" and b"421 " in data:
            self.counts["junk sessions ended with 421"] += 1
        if first.startswith(b"HTTP/1.1 503"):
            self.counts[f"{d['kind']} refused with 503"] += 1
            self.close(key, again_in=1.0)
            return
        if first.startswith(b"421 4.7.0") or first.startswith(b"421 4.3.2"):
            self.counts[f"{d['kind']} refused with 421"] += 1
            self.close(key, again_in=1.0)
            return
        if not data:
            self.counts[f"{d['kind']} ended"] += 1
            self.close(key)

    def tick(self, key, now):
        d, s = key.data, key.fileobj
        kind = d["kind"]
        try:
            if kind == "trickle" and d["next"] <= now and d["first"].startswith(b"220"):
                line = b"NOOP\r\n"
                s.send(line[d["sent"] % len(line):][:1])
                d["sent"] += 1
                d["next"] = now + TRICKLE
            elif kind == "junk" and d["next"] <= now and d["first"].startswith(b"220"):
                s.send(random.choice(JUNK) + random.choice(JUNK))
                d["next"] = now + 0.3
            elif kind == "slow" and d["sent"] and d["next"] <= now:
                s.send(b"a")
                d["next"] = now + 2
            elif kind in ("stream", "poll") and d["sent"] and d["until"] <= now:
                self.counts[f"{kind} opened and closed"] += 1
                self.close(key)
        except OSError:
            pass

    def writable(self, key):
        d = key.data
        text = self.request(d["kind"]) or b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
        try:
            key.fileobj.send(text)
        except OSError:
            pass
        d["sent"] = 1
        self.selector.modify(key.fileobj, selectors.EVENT_READ, d)

    def run(self):
        for i in range(TRICKLE_CONNECTIONS):
            self.open("trickle", TRICKLERS[i % len(TRICKLERS)])
        for i in range(JUNK_CONNECTIONS):
            self.open("junk", JUNKERS[i % len(JUNKERS)])
        for source in WAITERS:
            for kind, n in (("stream", STREAMS), ("poll", POLLS), ("slow", SLOW)):
                for _ in range(n):
                    self.open(kind, source)
        last_tick = 0.0
        while not self.stop.is_set():
            for key, mask in self.selector.select(timeout=0.1):
                if key.fileobj.fileno() < 0:
                    continue
                if mask & selectors.EVENT_WRITE:
                    self.writable(key)
                elif mask & selectors.EVENT_READ:
                    self.readable(key)
            now = time.time()
            due = [r for r in self.reopen if r[0] <= now]
            self.reopen = [r for r in self.reopen if r[0] > now]
            for _, kind, source in due:
                self.open(kind, source)
            if now - last_tick >= 0.1:
                last_tick = now
                for key in list(self.selector.get_map().values()):
                    self.tick(key, now)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()


def flood(port, stop, counts):
    """Connect and close at once, FLOOD_RATE a second, from FLOODERS in turn."""
    i = 0
    started = time.time()
    while not stop.is_set():
        s = socket.socket()
        try:
            s.settimeout(2)
            s.bind((FLOODERS[i % len(FLOODERS)], 0))
            s.connect(("127.0.0.1", port))
            counts["connect-and-close"] += 1
        except OSError:
            counts["connect-and-close failed"] += 1
        finally:
            s.close()
        i += 1
        pause = started + i / FLOOD_RATE - time.time()
        if pause > 0:
            time.sleep(pause)


def spam(http_port, stop, counts):
    """POST /api/v1/tests, SPAM_RATE a second, from SPAMMERS in turn."""
    i = 0
    started = time.time()
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10,
                                          source_address=(SPAMMERS[i % len(SPAMMERS)], 0))
        try:
            conn.request("POST", "/api/v1/tests", body="{}",
                         headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            counts[f"test creation {res.status}"] += 1
        except (OSError, http.client.HTTPException):
            counts["test creation failed"] += 1
        finally:
            conn.close()
        i += 1
        pause = started + i / SPAM_RATE - time.time()
        if pause > 0:
            time.sleep(pause)


def attack(smtp_port, http_port, test, stop, results):
    """The attacker's process: every part of the attack at once, until `stop` is set; what it
    counted goes to `results`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    counts = collections.Counter()
    parts = [threading.Thread(target=flood, args=(smtp_port, stop, counts)),
             threading.Thread(target=spam, args=(http_port, stop, counts))]
    for t in parts:
        t.start()
    try:
        Holder(smtp_port, http_port, test, stop, counts).run()
    finally:
        for t in parts:
            t.join()
        results.put(dict(counts))


class Attack:
    """The attacker in a process of its own, so that the honest clients' timings are not the
    attacker's interpreter lock."""

    def __init__(self, server, test):
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.results = ctx.Queue()
        self.proc = ctx.Process(target=attack, args=(server.port, server.http_port, test,
                                                     self.stop, self.results), daemon=True)
        self.counts = {}

    def __enter__(self):
        self.proc.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        try:
            self.counts = self.results.get(timeout=60)
        except Exception:  # noqa: BLE001 - a dead attacker reports nothing; the join says so
            self.counts = {}
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# --- the honest clients -------------------------------------------------------------------------

DELIVERED = re.compile(rb"delivered as ([a-z0-9]+)/(\d+)")


def honest_message(rng, subject, to, sizes=(1_000, 5_000, 20_000, 100_000, 300_000)):
    """A message of one of `sizes` (octets of body, about), CRLF lines of printable ASCII, none
    starting with a dot."""
    size = rng.choice(sizes)
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,;:-_=+"
    text = "".join(rng.choices(chars, k=size))
    lines, at = [], 0
    while at < size:
        n = rng.randint(10, 76)
        lines.append("x" + text[at:at + n])
        at += n
    return (f"From: honest@sender.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}.{time.time_ns()}@sender.example>\r\n"
            f"Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()


def deliver(port, address, msg, source, tls=True, timeout=30):
    """One delivery in its own session; returns (code, reply text, seconds from connect to the
    reply to the final dot)."""
    started = time.monotonic()
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="honest.sender.example", timeout=timeout,
                     source_address=(source, 0))
    try:
        c.ehlo()
        if tls:
            c.starttls(context=client_context())
            c.ehlo()
        code, text = c.mail("honest@sender.example")
        if code != 250:
            return code, text, time.monotonic() - started
        code, text = c.rcpt(address)
        if code != 250:
            return code, text, time.monotonic() - started
        code, text = c.data(msg)
        took = time.monotonic() - started
        try:
            c.quit()
        except (smtplib.SMTPException, OSError):
            pass
        return code, text, took
    finally:
        c.close()


class HonestSender(threading.Thread):
    """Delivers a message every half second or so, over STARTTLS, one session each."""

    def __init__(self, server, address, seed):
        super().__init__(daemon=True)
        self.server, self.address = server, address
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.sent = []      # (code, text, seconds, message)
        self.errors = []    # exceptions, as text

    def run(self):
        i = 0
        while not self.stop.is_set():
            msg = honest_message(self.rng, f"honest-{i}", self.address)
            try:
                code, text, took = deliver(self.server.port, self.address, msg, HONEST_SENDER)
                self.sent.append((code, text, took, msg))
            except (smtplib.SMTPException, OSError) as e:
                self.errors.append(f"delivery {i}: {e!r}")
            i += 1
            self.stop.wait(0.5)


class HonestVisitor(threading.Thread):
    """GETs /healthz, the test's page and its JSON API in turn, a new connection each."""

    def __init__(self, server, test):
        super().__init__(daemon=True)
        self.server = server
        self.paths = ["/healthz", f"/t/{test}", f"/api/v1/tests/{test}"]
        self.stop = threading.Event()
        self.times = collections.defaultdict(list)
        self.bad = []  # (path, status or error, seconds)

    def run(self):
        i = 0
        while not self.stop.is_set():
            path = self.paths[i % len(self.paths)]
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port, timeout=10,
                                              source_address=(HONEST_VISITOR, 0))
            try:
                conn.request("GET", path)
                res = conn.getresponse()
                res.read()
                took = time.monotonic() - started
                self.times[path].append(took)
                if res.status != 200:
                    self.bad.append((path, res.status, took))
            except (OSError, http.client.HTTPException) as e:
                self.bad.append((path, repr(e), time.monotonic() - started))
            finally:
                conn.close()
            i += 1
            self.stop.wait(0.2)


def soak(server, seconds, log=print):
    """The attack and the honest clients for `seconds` against `server` (started with
    SERVER_ARGS), which is stopped at the end and its data read; what was measured."""
    address = server.new_address()
    test = test_id(address)
    # A first delivery, so that the database has its working size.
    deliver(server.port, address, honest_message(random.Random(0), "warm-up", address),
            HONEST_SENDER)
    time.sleep(0.5)
    before = database_bytes(server.data_dir)
    result = {"seconds": seconds, "server": server, "test": test, "address": address}
    attack_started = time.monotonic()
    with Attack(server, test) as attacker:
        deadline = time.time() + 30
        while "under stress" not in server.log() and time.time() < deadline:
            time.sleep(0.2)
        result["stressed"] = "under stress" in server.log()
        log(f"attack running; server under stress: {result['stressed']}")
        sender = HonestSender(server, address, seed=1)
        visitor = HonestVisitor(server, test)
        sender.start()
        visitor.start()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(1)
            result["alive"] = server.proc.poll() is None
            if not result["alive"]:
                break
        sender.stop.set()
        visitor.stop.set()
        sender.join(timeout=60)
        visitor.join(timeout=60)
        result["alive"] = server.proc.poll() is None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10,
                                              source_address=(HONEST_VISITOR, 0))
            conn.request("GET", "/healthz")
            result["healthz at the end"] = conn.getresponse().status
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            result["healthz at the end"] = repr(e)
    result["attack"] = attacker.counts
    result["attack seconds"] = time.monotonic() - attack_started
    result["sent"], result["errors"] = sender.sent, sender.errors
    result["http"], result["http bad"] = dict(visitor.times), visitor.bad
    server.stop()  # the counts still in memory are written as it stops
    result["stopped with"] = server.proc.returncode
    result["db before"] = before
    result["db after"] = database_bytes(server.data_dir)
    # Every acknowledged delivery, found: its report, and its bytes.
    show = {d["delivery"]: d for d in server.show(test)["deliveries"]}
    present, wrong = 0, []
    for code, text, _, msg in sender.sent:
        m = DELIVERED.search(text)
        if code != 250 or not m or m.group(1).decode() != test:
            continue
        n = int(m.group(2))
        report = show.get(n)
        if report is None:
            wrong.append(f"{n}: no report")
        elif report["disposition"]["code"] != 250:
            wrong.append(f"{n}: disposition {report['disposition']}")
        elif server.raw(test, n) != msg:
            wrong.append(f"{n}: raw bytes differ")
        else:
            present += 1
    result["present"], result["wrong"] = present, wrong
    # What the honest deliveries stored themselves: their bytes and their reports.
    result["honest bytes"] = sum(len(msg) for *_, msg in sender.sent) + sum(
        len(json.dumps(d)) for d in show.values())
    result["rows"] = table_rows(server.data_dir)
    return result


def table_rows(data_dir):
    """The number of rows in each table of the database."""
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'mxlens.db')}?mode=ro", uri=True)
    try:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        db.close()


def attack_share(r):
    """What the database grew by beyond the honest deliveries' bytes and reports, with their
    share of the database's own overhead (DB_PER_DELIVERY each)."""
    grown = r["db after"] - r["db before"]
    return grown - r["honest bytes"] - DB_PER_DELIVERY * len(r["sent"])


def attack_bound(r):
    """DB_PER_ATTACK_MINUTE for each minute the attack ran (one at least)."""
    return DB_PER_ATTACK_MINUTE * max(1.0, r["attack seconds"] / 60)


def describe_soak(r):
    times = [t for _, _, t, _ in r["sent"]]
    acked = sum(1 for code, *_ in r["sent"] if code == 250)
    lines = [f"soak of {r['seconds']:.0f} s: {acked} of {len(r['sent'])} honest deliveries "
             f"acknowledged ({len(r['errors'])} errors), {r['present']} present and identical; "
             f"delivery p50/p99/max {summary(times)['p50_ms']:.0f}/{summary(times)['p99_ms']:.0f}/"
             f"{summary(times)['max_ms']:.0f} ms"]
    for path, ts in sorted(r["http"].items()):
        s = summary(ts)
        lines.append(f"  GET {path}: {s['n']} requests, p50/p99/max {s['p50_ms']:.0f}/"
                     f"{s['p99_ms']:.0f}/{s['max_ms']:.0f} ms")
    lines.append(f"  database {r['db before'] / 1e6:.2f} MB -> {r['db after'] / 1e6:.2f} MB, "
                 f"{r['honest bytes'] / 1e6:.2f} MB of it the honest messages and reports, "
                 f"{attack_share(r) / 1e6:.2f} MB beyond them and {DB_PER_DELIVERY // 1000} kB "
                 f"each (bound {attack_bound(r) / 1e6:.2f} MB); rows {r['rows']}")
    lines.append("  attacker: " + ", ".join(f"{k} {v}" for k, v in sorted(r["attack"].items())))
    return "\n".join(lines)


# --- kill -9 --------------------------------------------------------------------------------------

class Deliverer(threading.Thread):
    """Sends messages until stopped or the server goes; one to three per session, every other
    session over STARTTLS, about ten a second at most (every round checks all the deliveries so
    far, so their number is kept in bounds). Records each message answered 250 (and what else it
    was answered)."""

    def __init__(self, port, address, k, rng_seed, acknowledged, lock, source):
        super().__init__(daemon=True)
        self.port, self.address, self.k = port, address, k
        self.rng = random.Random(rng_seed)
        self.acknowledged, self.lock, self.source = acknowledged, lock, source
        self.stop = threading.Event()
        self.other = []  # (code, text) for replies to the final dot other than 250
        self.errors = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                c = smtplib.SMTP("127.0.0.1", self.port, local_hostname=f"k{self.k}.example",
                                 timeout=30, source_address=(self.source, 0))
            except OSError as e:
                self.errors.append(repr(e))
                return
            try:
                c.ehlo()
                if i % 2:
                    c.starttls(context=client_context())
                    c.ehlo()
                for _ in range(self.rng.randint(1, 3)):
                    msg = honest_message(self.rng, f"k{self.k}-{i}", self.address,
                                         sizes=(1_000, 5_000, 20_000, 100_000))
                    i += 1
                    c.mail("honest@sender.example")
                    c.rcpt(self.address)
                    code, text = c.data(msg)
                    m = DELIVERED.search(text)
                    if code == 250 and m:
                        with self.lock:
                            self.acknowledged[(m.group(1).decode(), int(m.group(2)))] = msg
                    else:
                        self.other.append((code, text))
                    if self.stop.wait(self.rng.uniform(0, 0.2)):
                        break
                c.quit()
            except (smtplib.SMTPException, OSError) as e:
                self.errors.append(repr(e))  # the server was killed mid-dialogue
            finally:
                c.close()


def http_raw(server, test, n):
    """The raw download of a delivery, on a connection of its own (over one kept alive, each
    download after the first waits about 40 ms for the client's delayed ACK)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        conn.request("GET", f"/api/v1/tests/{test}/deliveries/{n}/raw")
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def missing_or_wrong(server, acknowledged, through_cli=0):
    """What of the acknowledged deliveries is not there as it was sent: every report, and every
    raw message over HTTP; with `through_cli`, that many of them (spread evenly) through
    `mxlens tests raw` as well."""
    wrong = []
    shown = {}
    for test in {t for t, _ in acknowledged}:
        shown[test] = {d["delivery"]: d for d in server.show(test)["deliveries"]}
    every = max(1, len(acknowledged) // through_cli) if through_cli else 0
    for i, ((test, n), msg) in enumerate(sorted(acknowledged.items())):
        report = shown[test].get(n)
        if report is None:
            wrong.append(f"{test}/{n}: no report")
            continue
        if report["disposition"]["code"] != 250:
            wrong.append(f"{test}/{n}: disposition {report['disposition']}")
        raw = http_raw(server, test, n)[1]
        if raw != msg:
            wrong.append(f"{test}/{n}: raw bytes differ ({len(raw)} octets, {len(msg)} sent)")
        if every and i % every == 0 and server.raw(test, n) != msg:
            wrong.append(f"{test}/{n}: raw bytes differ through mxlens tests raw")
    return wrong


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_rounds(rounds, seed, log=print):
    """`rounds` kills of the server or a worker, during deliveries; what happened in each."""
    rng = random.Random(seed)
    victims = (["server", "worker"] * rounds)[:rounds]
    rng.shuffle(victims)
    tmp = tempfile.TemporaryDirectory(prefix="mxlens-kill-")
    acknowledged, lock = {}, threading.Lock()
    result = {"seed": seed, "rounds": [], "server kills": 0, "worker kills": 0, "problems": []}
    server = Server(data_dir=tmp.name).start()
    try:
        address = server.new_address()
        for r, victim in enumerate(victims):
            threads = [Deliverer(server.port, address, k, rng.random(), acknowledged, lock,
                                 f"127.0.50.{2 + k}") for k in range(4)]
            before = len(acknowledged)
            for t in threads:
                t.start()
            time.sleep(rng.uniform(1.0, 4.0))
            round_info = {"victim": victim}
            if victim == "worker":
                workers = server.workers()
                pid = rng.choice(workers)
                os.kill(pid, signal.SIGKILL)
                result["worker kills"] += 1
                time.sleep(rng.uniform(0.5, 2.0))  # deliveries go on meanwhile
                for t in threads:
                    t.stop.set()
                for t in threads:
                    t.join(timeout=60)
                failed = [x for t in threads for x in t.other] + [x for t in threads for x in t.errors]
                if failed:
                    result["problems"].append(f"round {r}: after a worker's kill: {failed[:5]}")
                if server.proc.poll() is not None:
                    result["problems"].append(f"round {r}: the server died with its worker")
                    server = Server(data_dir=tmp.name).start()
            else:
                workers = server.workers()
                server.kill()
                result["server kills"] += 1
                for t in threads:
                    t.stop.set()
                for t in threads:
                    t.join(timeout=60)
                deadline = time.time() + 5
                while any(pid_alive(p) for p in workers) and time.time() < deadline:
                    time.sleep(0.05)
                left = [p for p in workers if pid_alive(p)]
                if left:
                    result["problems"].append(f"round {r}: workers {left} outlived the server")
                server = Server(data_dir=tmp.name).start()
            round_info["acknowledged"] = len(acknowledged) - before
            wrong = missing_or_wrong(server, acknowledged)
            round_info["wrong"] = len(wrong)
            result["problems"] += [f"round {r} ({victim}): {w}" for w in wrong[:10]]
            result["rounds"].append(round_info)
            log(f"round {r}: killed the {victim}; {round_info['acknowledged']} acknowledged in "
                f"the round, {len(acknowledged)} in all, {len(wrong)} missing or wrong")
        wrong = missing_or_wrong(server, acknowledged, through_cli=100)
        result["problems"] += [f"at the end: {w}" for w in wrong[:10]]
        result["acknowledged"] = len(acknowledged)
        result["present at the end"] = len(acknowledged) - len(wrong)
    finally:
        try:
            server.cleanup()
        finally:
            tmp.cleanup()
    return result


# --- the tests ------------------------------------------------------------------------------------

class UnderAttack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    def test_honest_senders_and_visitors_are_served_while_an_attacker_does_everything_at_once(self):
        server = Server(*SERVER_ARGS).start()
        try:
            r = soak(server, SOAK_SECONDS)
            print("\n" + describe_soak(r))
            self.assertTrue(r["alive"], "the server died:\n" + server.log()[-3000:])
            self.assertEqual(200, r["healthz at the end"])
            self.assertEqual(0, r["stopped with"])
            self.assertTrue(r["stressed"], "the attack did not fill the SMTP slots")
            # Every honest delivery: answered 250 in time, then found as it was sent.
            self.assertEqual([], r["errors"])
            self.assertGreaterEqual(len(r["sent"]), SOAK_SECONDS / 2)
            late = [(code, round(t, 2)) for code, _, t, _ in r["sent"]
                    if code != 250 or t > DELIVERY_BOUND]
            self.assertEqual([], late, "honest deliveries refused or later than "
                                       f"{DELIVERY_BOUND} s")
            self.assertEqual([], r["wrong"])
            self.assertEqual(len(r["sent"]), r["present"])
            # Every honest HTTP request: 200 in time.
            self.assertEqual([], r["http bad"])
            for path, times in r["http"].items():
                self.assertGreaterEqual(len(times), SOAK_SECONDS, path)
                self.assertLess(max(times), HTTP_BOUND, path)
            # The database: the honest deliveries, and a bounded share for the attack.
            self.assertLess(attack_share(r), attack_bound(r))
            # The attack bit: trickles were cut off under stress, waits past the share and
            # connections past the cap got 503, test creation past the rate got 429.
            a = r["attack"]
            self.assertGreater(a.get("trickles cut off", 0), 50, a)
            self.assertGreater(a.get("stream refused with 503", 0) +
                               a.get("poll refused with 503", 0), 50, a)
            self.assertGreater(a.get("slow refused with 503", 0), 50, a)
            self.assertGreater(a.get("test creation 429", 0), 100, a)
            self.assertGreater(a.get("connect-and-close", 0), FLOOD_RATE * SOAK_SECONDS / 2, a)
            self.assertGreater(a.get("junk sessions ended with 421", 0), 10, a)
        finally:
            server.cleanup()


class KillNine(unittest.TestCase):
    def test_every_acknowledged_delivery_survives_kill_9_of_the_server_or_a_worker(self):
        seed = int(os.environ.get("MXLENS_SOAK_SEED") or random.randrange(1 << 32))
        print(f"\nkill -9 rounds: seed {seed} (MXLENS_SOAK_SEED={seed} repeats them)")
        r = kill_rounds(KILL_ROUNDS, seed)
        print(f"{r['server kills']} server kills, {r['worker kills']} worker kills; "
              f"{r['acknowledged']} acknowledged, {r['present at the end']} present at the end")
        self.assertEqual([], r["problems"])
        self.assertEqual(r["acknowledged"], r["present at the end"])
        self.assertGreater(r["acknowledged"], 5 * KILL_ROUNDS)
        self.assertTrue(all(x["acknowledged"] > 0 for x in r["rounds"]), r["rounds"])


if __name__ == "__main__":
    unittest.main()
