"""A real DNS server (dnsmasq) on loopback serving tests/dns/zones.conf.

dnsmasq is authoritative for the test names (`local=`), so it answers NXDOMAIN and NODATA as a
real zone would. It listens on 127.0.0.1 only, forwards nothing, and is stopped at exit.
"""
import atexit
import os
import random
import socket
import struct
import subprocess
import tempfile
import time

ZONES = os.path.join(os.path.dirname(__file__), "..", "dns", "zones.conf")
KEYS = os.path.join(os.path.dirname(__file__), "..", "dns", "keys")


def _ask(port, name, qtype=16, timeout=0.5):
    """One UDP question; returns the response, or None without an answer."""
    qid = random.randint(0, 0xFFFF)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\0" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return None
    return data


def _query(port, name, qtype=16, timeout=0.5):
    """One UDP question; returns the response code, or None without an answer."""
    data = _ask(port, name, qtype, timeout)
    return None if data is None else data[3] & 0x0F


def _skip_name(data, pos):
    while data[pos]:
        if data[pos] & 0xC0 == 0xC0:  # a compression pointer ends the name
            return pos + 2
        pos += data[pos] + 1
    return pos + 1


def _txt_answers(data):
    """The TXT records of a response (RFC 1035 §3.3.14): each a list of its character-strings,
    as bytes, exactly as they were on the wire."""
    answers = struct.unpack(">H", data[6:8])[0]
    pos = _skip_name(data, 12) + 4  # the question
    records = []
    for _ in range(answers):
        pos = _skip_name(data, pos)
        rtype, _, _, length = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        rdata, pos = data[pos:pos + length], pos + length
        if rtype != 16:
            continue
        strings, i = [], 0
        while i < len(rdata):
            strings.append(rdata[i + 1:i + 1 + rdata[i]])
            i += 1 + rdata[i]
        records.append(strings)
    return records


class DnsServer:
    """dnsmasq serving `zones` (conf files; the shared test zones by default)."""

    def __init__(self, zones=None):
        self.zones = zones or [ZONES]
        self.proc = None
        self.port = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mxlens-dns-")

    def start(self):
        for _ in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            args = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                    f"--port={port}", "--listen-address=127.0.0.1",
                    "--bind-interfaces", "--pid-file=",
                    f"--log-facility={os.path.join(self._tmp.name, 'dnsmasq.log')}"]
            args += [f"--conf-file={z}" for z in self.zones]
            if os.geteuid() == 0:
                args.append("--user=root")
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.time() + 5
            while time.time() < deadline and self.proc.poll() is None:
                if _query(port, "nonexistent.example") is not None:
                    self.port = port
                    atexit.register(self.stop)
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("dnsmasq did not start: " +
                           (self.proc.stderr.read().decode() if self.proc else ""))

    def txt(self, name):
        """The TXT records of `name` as this server sends them: lists of bytes."""
        data = _ask(self.port, name, timeout=2)
        if data is None:
            raise AssertionError(f"no answer from dnsmasq for {name} TXT")
        return _txt_answers(data)

    @property
    def address(self):
        return f"127.0.0.1@{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_shared = None


def shared():
    """The DNS server of this test process, started on first use."""
    global _shared
    if _shared is None:
        _shared = DnsServer().start()
    return _shared
