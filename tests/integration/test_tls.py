"""What mxlens records about TLS, seen through real clients: swaks, openssl s_client, smtplib."""
import os
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import ServerCase, DOMAIN, Server, client_context, message, smtp, test_id


def swaks(port, to, *extra):
    return subprocess.run(
        ["swaks", "-s", "127.0.0.1", "-p", str(port), "-f", "sender@example.org", "-t", to,
         "--helo", "client.example", *extra],
        capture_output=True, text=True, timeout=60)


def s_client(port, rcpt, *extra):
    dialogue = (f"EHLO s.example\nMAIL FROM:<a@example.org>\nRCPT TO:<{rcpt}>\nDATA\n"
                "Subject: s_client\n\nhello\n.\nQUIT\n")
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
         "-quiet", "-crlf", *extra],
        input=dialogue, capture_output=True, text=True, timeout=60)


def make_unverifiable_chain(directory):
    """An expired client certificate whose issuer is not sent, followed by twenty "issuers" of
    that name signed by other keys: a chain no verifier could build, which costs it signature
    checks to find out. Returns the chain file and the key file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(key, subject, issuer, signer, start, end):
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now + start).not_valid_after(now + end)
                .sign(signer, hashes.SHA256()))

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    key, ca = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    chain = [cert(key, "expired.example", "missing CA", ca, -30 * day, -day)]
    for _ in range(20):
        other = ec.generate_private_key(ec.SECP256R1())
        chain.append(cert(other, "missing CA", "missing CA", other, -day, 30 * day))
    chain_path, key_path = os.path.join(directory, "chain.pem"), os.path.join(directory, "key.pem")
    with open(chain_path, "wb") as f:
        f.write(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return chain_path, key_path


def make_cert(directory, name, cn):
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}/O=mxlens tests", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


class TlsFacts(ServerCase):
    def only_delivery(self, address):
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(len(deliveries), 1)
        return deliveries[0]

    def test_plaintext_is_recorded_as_offered_not_used(self):
        address = self.server.new_address()
        out = swaks(self.server.port, address)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        tls = self.only_delivery(address)["tls"]
        self.assertIs(tls["used"], False)
        self.assertIs(tls["offered"], True)
        self.assertIsNone(tls["version"])

    def test_a_helo_client_was_never_offered_starttls(self):
        address = self.server.new_address()
        c = smtp(self.server.port)
        c.helo("old.example")
        c.sendmail("a@example.org", [address], message("helo", "x"))
        c.quit()
        d = self.only_delivery(address)
        self.assertIs(d["tls"]["offered"], False)
        self.assertIs(d["connection"]["esmtp"], False)
        self.assertEqual(d["connection"]["helo"], "old.example")

    def test_swaks_tls12_with_a_chosen_cipher(self):
        address = self.server.new_address()
        out = swaks(self.server.port, address, "--tls", "--tls-protocol", "tlsv1_2",
                    "--tls-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        d = self.only_delivery(address)
        self.assertIs(d["tls"]["used"], True)
        self.assertEqual(d["tls"]["version"], "TLSv1.2")
        self.assertEqual(d["tls"]["cipher"], "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(d["tls"]["bits"], 128)
        hello = d["tls"]["client_hello"]
        self.assertEqual(hello["ciphers"], ["ECDHE-RSA-AES128-GCM-SHA256",
                                            "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"])
        self.assertRegex(hello["fingerprint"], r"^t12[di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")
        # The client must EHLO again inside TLS (RFC 3207 §4.2); the transcript shows both.
        lines = [t["line"] for t in d["transcript"] if t["dir"] == "c"]
        self.assertEqual(sum(1 for l in lines if l.startswith("EHLO")), 2, lines)
        self.assertTrue(any(t["dir"] == "tls" and "TLSv1.2" in t["line"] for t in d["transcript"]))

    def test_openssl_tls13_with_a_chosen_suite_records_the_group(self):
        address = self.server.new_address()
        out = s_client(self.server.port, address, "-tls1_3", "-ciphersuites",
                       "TLS_CHACHA20_POLY1305_SHA256", "-groups", "X25519")
        self.assertIn("250 2.0.0", out.stdout, out.stdout + out.stderr)
        tls = self.only_delivery(address)["tls"]
        self.assertEqual(tls["version"], "TLSv1.3")
        self.assertEqual(tls["cipher"], "TLS_CHACHA20_POLY1305_SHA256")
        self.assertEqual(tls["group"], "x25519")
        self.assertIn("TLSv1.3", tls["client_hello"]["versions"])
        self.assertEqual(tls["client_hello"]["groups"], ["x25519"])

    def test_tls10_client_is_recorded_not_refused(self):
        address = self.server.new_address()
        out = swaks(self.server.port, address, "--tls", "--tls-protocol", "tlsv1",
                    "--tls-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        tls = self.only_delivery(address)["tls"]
        self.assertIs(tls["used"], True)
        self.assertEqual(tls["version"], "TLSv1")

    def test_a_client_offering_only_unusable_suites_is_stored_as_a_failed_handshake(self):
        # A PSK-only offer: the server has no pre-shared key, so no suite can be agreed.
        s_client(self.server.port, "x@" + DOMAIN, "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
                 "-psk", "0123456789abcdef")
        failed = self.server.wait_sessions(lambda s: s["outcome"] == "tls_failed")
        self.assertTrue(failed, "no failed handshake stored")
        handshake = failed[0]["tls"]["failed_handshakes"][0]
        self.assertIn("no shared cipher", handshake["reason"])
        self.assertEqual(handshake["client_ip"], "127.0.0.1")
        self.assertIn("PSK-AES128-GCM-SHA256", handshake["client_hello"]["ciphers"])
        self.assertIs(failed[0]["tls"]["used"], False)

    def test_client_certificate_subject_is_recorded(self):
        address = self.server.new_address()
        with tempfile.TemporaryDirectory() as d:
            cert, key = make_cert(d, "client", "sender.example")
            out = swaks(self.server.port, address, "--tls", "--tls-cert", cert, "--tls-key", key)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        cc = self.only_delivery(address)["tls"]["client_certificate"]
        self.assertIn("CN=sender.example", cc["subject"])
        self.assertEqual(len(cc["sha256"]), 64)

    def test_an_expired_client_certificate_without_its_issuer_is_taken_and_recorded(self):
        address = self.server.new_address()
        with tempfile.TemporaryDirectory() as d:
            chain, key = make_unverifiable_chain(d)
            for maximum in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
                ctx = client_context(maximum=maximum)
                ctx.load_cert_chain(chain, key)
                c = smtp(self.server.port)
                c.starttls(context=ctx)
                c.sendmail("a@example.org", [address], message(str(maximum), "x"))
                c.quit()
        deliveries = self.server.show(test_id(address))["deliveries"]
        self.assertEqual(["TLSv1.3", "TLSv1.2"], [d["tls"]["version"] for d in deliveries])
        for d in deliveries:
            cc = d["tls"]["client_certificate"]
            self.assertIn("CN=expired.example", cc["subject"])
            self.assertIn("CN=missing CA", cc["issuer"])
            self.assertLess(cc["not_after"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def test_commands_pipelined_after_starttls_are_never_answered_inside_tls(self):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        f = sock.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220"))
        sock.sendall(b"EHLO x.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\nRSET\r\n")  # one write
        self.assertTrue(f.readline().startswith(b"220 2.0.0"))
        tls = client_context().wrap_socket(sock, server_hostname=DOMAIN)
        tls.settimeout(1.0)
        try:
            early = tls.recv(4096)
        except (socket.timeout, TimeoutError):
            early = b""
        self.assertEqual(early, b"", "the pipelined RSET was answered inside TLS")
        tls.settimeout(10)
        tls.sendall(b"EHLO x.example\r\n")
        first = tls.recv(4096)
        self.assertTrue(first.startswith(b"250-" + DOMAIN.encode()), first)
        tls.sendall(b"QUIT\r\n")
        tls.close()
        sessions = self.server.wait_sessions(
            lambda s: any("discarded" in t["line"] for t in s["transcript"]))
        self.assertTrue(sessions)


class CertificateReload(unittest.TestCase):
    def test_sighup_serves_the_new_certificate_and_open_sessions_carry_on(self):
        with tempfile.TemporaryDirectory() as d:
            cert, key = make_cert(d, "server", "first.example")
            with Server("--tls-cert", cert, "--tls-key", key) as server:
                address = server.new_address()

                def peer_cn(client):
                    der = client.sock.getpeercert(binary_form=True)
                    pem = ssl.DER_cert_to_PEM_cert(der)
                    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem,
                                         capture_output=True, text=True, check=True)
                    return out.stdout

                open_session = smtp(server.port)
                open_session.starttls(context=client_context())
                open_session.ehlo("client.example")
                self.assertIn("first.example", peer_cn(open_session))

                new_cert, new_key = make_cert(d, "next", "second.example")
                os.replace(new_cert, cert)
                os.replace(new_key, key)
                server.proc.send_signal(1)  # SIGHUP
                # Reloaded by the signal itself: the file poll (every 2 s) would reload these
                # files too, and says so in other words.
                deadline = time.time() + 10
                while "certificates reloaded (SIGHUP)" not in server.log() and time.time() < deadline:
                    time.sleep(0.05)
                self.assertIn("certificates reloaded (SIGHUP)", server.log())

                fresh = smtp(server.port)
                fresh.starttls(context=client_context())
                fresh.ehlo("client.example")
                self.assertIn("second.example", peer_cn(fresh))
                fresh.quit()

                # The session opened before the reload still delivers.
                open_session.sendmail("a@example.org", [address], message("after reload", "x"))
                open_session.quit()
                self.assertEqual(len(server.show(test_id(address))["deliveries"]), 1)


if __name__ == "__main__":
    unittest.main()
