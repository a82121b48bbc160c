"""Honest senders keep getting in while an attacker tries to hold every connection slot: 2,000
connections from 50 addresses, each trickling one octet of a NOOP every few seconds and coming
back at once when dropped. The slots an address, and a network, may hold are bounded, the last
ones are kept for newcomers, and under stress a command must come within 10 s."""
import resource
import selectors
import socket
import threading
import time
import unittest

from harness import Server, message, smtp

ATTACKERS = [f"127.0.{10 + i}.2" for i in range(50)]  # 50 addresses, each in a /24 of its own
CONNECTIONS = 2000
TRICKLE = 3.0  # seconds between octets: a NOOP line takes 18 s


class Trickler:
    """Holds up to CONNECTIONS connections from ATTACKERS, each sending one octet of "NOOP\\r\\n"
    every TRICKLE seconds, and opens another whenever the server drops one."""

    def __init__(self, port):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.open = 0
        self.dropped = 0
        self.timed_out = 0  # dropped with 421 4.4.2: a trickled command cut off
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self, i):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((ATTACKERS[i % len(ATTACKERS)], 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return
        self.selector.register(s, selectors.EVENT_READ, {"i": i, "sent": 0, "next": time.time()})
        self.open += 1

    def run(self):
        for i in range(CONNECTIONS):
            self.connect(i)
        line = b"NOOP\r\n"
        while not self.stop.is_set():
            now = time.time()
            for key, _ in self.selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if b"421 4.4.2" in data:
                    self.timed_out += 1
                if not data:  # dropped: come back at once
                    self.selector.unregister(key.fileobj)
                    key.fileobj.close()
                    self.open -= 1
                    self.dropped += 1
                    self.connect(key.data["i"])
            for key in list(self.selector.get_map().values()):
                d = key.data
                if d["next"] <= now:
                    try:
                        key.fileobj.send(line[d["sent"] % len(line):][:1])
                    except OSError:
                        pass
                    d["sent"] += 1
                    d["next"] = now + TRICKLE
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


class HeldSlots(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < CONNECTIONS + 500:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, CONNECTIONS + 1000), hard))

    def test_an_honest_sender_delivers_20_of_20_within_5_s_each_while_2000_trickle(self):
        with Server() as server:
            address = server.new_address()
            with Trickler(server.port) as attack:
                # Until the attacker holds what it can get.
                deadline = time.time() + 30
                while "under stress" not in server.log() and time.time() < deadline:
                    time.sleep(0.2)
                self.assertIn("under stress", server.log())
                times = []
                for i in range(20):
                    started = time.time()
                    with smtp(server.port, source="127.0.200.2") as c:
                        c.sendmail("honest@sender.example", [address], message(f"honest {i}", "x"))
                    times.append(time.time() - started)
                    time.sleep(1)  # the attack goes on between them: 20 s of it in all
                dropped, timed_out = attack.dropped, attack.timed_out
            print(f"\nhonest deliveries: slowest {max(times):.2f} s; the attacker was dropped "
                  f"{dropped} times, {timed_out} of them a trickled command cut off")
            self.assertLess(max(times), 5, times)
            self.assertEqual(20, len(server.show(address.split("@")[0])["deliveries"]))
            # Under stress a trickled command is cut off, so the attacker's slots keep turning.
            self.assertGreater(timed_out, 100)


if __name__ == "__main__":
    unittest.main()
