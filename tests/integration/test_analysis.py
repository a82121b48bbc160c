"""SPF, DKIM, DMARC and reverse DNS against a real DNS server (dnsmasq, tests/dns/zones.conf),
with DKIM signatures made by dkimpy. Expected results are written from the RFCs."""
import json
import os
import socket
import subprocess
import unittest

import dnsd
from analysis_helpers import AUTH, analyze, message, sign
from harness import MXLENS


def spf(client_ip, mail_from, helo="helo.example"):
    return analyze(message(), client_ip=client_ip, mail_from=mail_from, helo=helo)["auth"]


class Spf(unittest.TestCase):
    """RFC 7208 check_host() for the MAIL FROM identity, and separately for HELO."""

    def check(self, client_ip, mail_from, result, lookups=None, voids=None):
        auth = spf(client_ip, mail_from)
        self.assertEqual([], [e.message for e in AUTH.iter_errors(auth)])
        got = auth["spf"]
        self.assertEqual(result, got["result"], f"{mail_from} from {client_ip}: {got}")
        if lookups is not None:
            self.assertEqual(lookups, got["lookups"], got)
        if voids is not None:
            self.assertEqual(voids, got["void_lookups"], got)
        return got

    def test_ip4_passes_for_the_listed_address_and_fails_for_another(self):
        got = self.check("127.0.0.2", "x@sender.example", "pass", lookups=0)
        self.assertEqual("sender.example", got["domain"])
        self.assertEqual("v=spf1 ip4:127.0.0.2 -all", got["record"])
        self.check("127.0.0.3", "x@sender.example", "fail")

    def test_loopback_gets_no_free_pass(self):
        # libspf2 passes every 127/8 client; RFC 7208 has no such rule.
        self.check("127.0.0.3", "x@softfail.example", "softfail")

    def test_ip6(self):
        self.check("::1", "x@ip6.example", "pass")

    def test_a_and_mx_count_one_term_each(self):
        self.check("127.0.0.2", "x@a.example", "pass", lookups=1)
        self.check("127.0.0.3", "x@mx.example", "pass", lookups=1)
        self.check("127.0.0.2", "x@mx.example", "fail", lookups=1)

    def test_include_and_redirect(self):
        self.check("127.0.0.2", "x@include.example", "pass", lookups=1)
        self.check("127.0.0.3", "x@include.example", "fail", lookups=1)
        self.check("127.0.0.2", "x@redirect.example", "pass", lookups=1)
        self.check("127.0.0.3", "x@redirect.example", "fail", lookups=1)

    def test_exists_with_macros(self):
        self.check("127.0.0.2", "x@exists.example", "pass")
        self.check("127.0.0.3", "x@exists.example", "fail")
        # %{ir}.%{l1r+-}: 2.0.0.127 and "bounces" from "bounces-123" (§7.3).
        self.check("127.0.0.2", "bounces-123@macro.example", "pass")
        self.check("127.0.0.2", "other-123@macro.example", "fail")

    def test_qualifiers(self):
        self.check("127.0.0.2", "x@softfail.example", "softfail")
        self.check("127.0.0.2", "x@neutral.example", "neutral")

    def test_no_record_and_no_domain_are_none(self):
        self.check("127.0.0.2", "x@nospf.example", "none")
        self.check("127.0.0.2", "x@nxdomain.example", "none")

    def test_syntax_errors_and_two_records_are_permerror(self):
        self.check("127.0.0.2", "x@syntax.example", "permerror")
        self.check("127.0.0.2", "x@twospf.example", "permerror")

    def test_exactly_ten_dns_terms_through_nested_includes_pass(self):
        self.check("127.0.0.2", "x@limit10.example", "pass", lookups=10)

    def test_an_included_record_with_a_byte_that_is_not_ascii_is_a_permerror(self):
        # RFC 7208 §4.6.1's grammar is ASCII; a permerror in an include is the result (§5.2).
        got = self.check("127.0.0.2", "x@includebytes.example", "permerror")
        self.assertIn("\\x96all (the SPF record of spf96.example)", got["problem"])
        self.assertNotIn("record_error", got)  # its own record is fine

    def test_an_eleventh_term_is_a_permerror(self):
        got = self.check("127.0.0.2", "x@limit11.example", "permerror", lookups=11)
        self.assertIn("10 DNS-querying terms", got["problem"])

    def test_two_void_lookups_pass_and_a_third_is_a_permerror(self):
        self.check("127.0.0.2", "x@void2.example", "pass", voids=2)
        got = self.check("127.0.0.2", "x@void3.example", "permerror", voids=3)
        self.assertIn("void lookups", got["problem"])

    def test_explanation_of_a_fail_is_expanded(self):
        got = self.check("127.0.0.2", "x@exp.example", "fail")
        self.assertEqual("127.0.0.2 is not one of exp.example's senders", got["explanation"])

    def test_null_sender_is_checked_as_postmaster_at_helo(self):
        auth = spf("127.0.0.2", "", helo="helo.example")
        self.assertEqual("pass", auth["spf"]["result"])
        self.assertEqual("helo.example", auth["spf"]["domain"])

    def test_helo_identity_is_evaluated_separately(self):
        auth = spf("127.0.0.3", "x@sender.example", helo="helo.example")
        self.assertEqual("fail", auth["spf"]["result"])
        self.assertEqual("fail", auth["spf_helo"]["result"])
        self.assertEqual("helo.example", auth["spf_helo"]["domain"])
        auth = spf("127.0.0.2", "x@sender.example", helo="nospf.example")
        self.assertEqual("none", auth["spf_helo"]["result"])

    def test_a_dns_failure_is_a_temperror(self):
        # A resolver whose upstream does not answer (a loopback port nobody reads).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            out = subprocess.run(
                [MXLENS, "analyze", "-", "--client-ip", "127.0.0.2", "--mail-from",
                 "x@sender.example", "--dns", f"127.0.0.1@{port}", "--dns-timeout", "0.3"],
                input=message(), capture_output=True, check=True, timeout=60)
        auth = json.loads(out.stdout)["auth"]
        self.assertEqual("temperror", auth["spf"]["result"])
        self.assertEqual("temperror", auth["dmarc"]["result"])


class Dkim(unittest.TestCase):
    """RFC 6376, 8301 (no rsa-sha1), 8463 (ed25519); messages signed by dkimpy."""

    def verify(self, signed, **kw):
        auth = analyze(signed, **kw)["auth"]
        self.assertEqual([], [e.message for e in AUTH.iter_errors(auth)])
        return auth["dkim"]

    def test_rsa_and_ed25519_relaxed_and_simple_pass(self):
        cases = [("rsa2048", "relaxed", "simple", None, "rsa", 2048),
                 ("rsa2048", "simple", "simple", None, "rsa", 2048),
                 ("rsa1024", "relaxed", "relaxed", None, "rsa", 1024),
                 ("ed25519", "relaxed", "relaxed", "ed25519-sha256", "ed25519", 256)]
        for selector, hc, bc, alg, key_type, bits in cases:
            with self.subTest(selector=selector, c=f"{hc}/{bc}"):
                key = os.path.join(dnsd.KEYS, "ed25519.key") if key_type == "ed25519" else None
                sigs = self.verify(sign(message(), selector, key=key, hcanon=hc, bcanon=bc, alg=alg))
                self.assertEqual(1, len(sigs))
                s = sigs[0]
                self.assertEqual("pass", s["result"], s)
                self.assertEqual(("sender.example", selector), (s["domain"], s["selector"]))
                self.assertEqual(alg or "rsa-sha256", s["algorithm"])
                self.assertEqual((key_type, bits), (s["key_type"], s["key_bits"]))
                self.assertEqual(f"{hc}/{bc}", s["canonicalization"])
                self.assertTrue(s["body_hash_ok"])
                self.assertIn("from", [h.lower() for h in s["signed_headers"]])
                self.assertIsInstance(s["timestamp"], int)

    def test_a_changed_body_fails_on_the_body_hash(self):
        signed = sign(message(), "rsa2048").replace(b"body line", b"body LINE")
        s = self.verify(signed)[0]
        self.assertEqual("fail", s["result"])
        self.assertIs(False, s["body_hash_ok"])

    def test_a_changed_signed_header_fails_the_signature(self):
        signed = sign(message(), "rsa2048").replace(b"Subject: hello", b"Subject: HELLO!")
        s = self.verify(signed)[0]
        self.assertEqual("fail", s["result"])
        self.assertNotEqual(True, s["body_hash_ok"])

    def test_a_missing_key_is_a_permerror(self):
        signed = sign(message(), "nosuchkey", key=os.path.join(dnsd.KEYS, "rsa2048.pem"))
        s = self.verify(signed)[0]
        self.assertEqual("permerror", s["result"])

    def test_revoked_and_malformed_keys_are_permerrors(self):
        for selector in ("revoked", "malformed"):
            with self.subTest(selector=selector):
                signed = sign(message(), selector, key=os.path.join(dnsd.KEYS, "rsa2048.pem"))
                s = self.verify(signed)[0]
                self.assertEqual("permerror", s["result"], s)

    def test_rsa_sha1_is_a_fail(self):
        s = self.verify(sign(message(), "rsa2048", alg="rsa-sha1"))[0]
        self.assertEqual("fail", s["result"])
        self.assertIn("8301", s["reason"])

    def test_a_key_under_1024_bits_is_a_fail(self):
        s = self.verify(sign(message(), "rsa512"))[0]
        self.assertEqual("fail", s["result"])
        self.assertEqual(512, s["key_bits"])

    def test_body_length_tag_is_reported(self):
        # dkimpy has no l= switch on its command line; sign through its API.
        import dkim
        with open(os.path.join(dnsd.KEYS, "rsa2048.pem"), "rb") as f:
            key = f.read()
        msg = message(body="line one\r\nline two\r\n")
        sig = dkim.sign(msg, b"rsa2048", b"sender.example", key, length=True)
        s = self.verify(sig + msg + b"appended line\r\n")[0]
        self.assertEqual("pass", s["result"])  # l= lets content be appended: the check's business
        self.assertEqual(20, s["body_length"])

    def test_more_than_ten_signatures_are_listed_not_verified(self):
        msg = message()
        for _ in range(12):
            msg = sign(msg, "rsa2048")
        sigs = self.verify(msg)
        self.assertEqual(12, len(sigs))
        self.assertEqual(10, sum(1 for s in sigs if s["result"] != "policy"))
        self.assertEqual(2, sum(1 for s in sigs if s["result"] == "policy"))

    def test_no_signature_is_dkim_none(self):
        auth = analyze(message())["auth"]
        self.assertEqual([], auth["dkim"])
        self.assertIn("dkim=none", auth["authentication_results"])


class Dmarc(unittest.TestCase):
    """RFC 7489: discovery, strict tag parsing, relaxed and strict alignment."""

    def dmarc(self, sender, mail_from, client_ip="127.0.0.3", signer=None):
        msg = message(sender=sender)
        if signer:
            msg = sign(msg, "rsa2048", domain=signer)
        auth = analyze(msg, client_ip=client_ip, mail_from=mail_from)["auth"]
        self.assertEqual([], [e.message for e in AUTH.iter_errors(auth)])
        return auth["dmarc"]

    def test_pass_through_aligned_dkim_only(self):
        d = self.dmarc("a@sender.example", "b@other.example", "127.0.0.2", signer="sender.example")
        self.assertEqual(("pass", True, False), (d["result"], d["dkim_aligned"], d["spf_aligned"]))
        self.assertEqual(("reject", 100, "r", "r"), (d["policy"], d["pct"], d["adkim"], d["aspf"]))

    def test_pass_through_aligned_spf_only(self):
        d = self.dmarc("a@sender.example", "b@sender.example", "127.0.0.2")
        self.assertEqual(("pass", False, True), (d["result"], d["dkim_aligned"], d["spf_aligned"]))

    def test_fail_when_neither_aligns(self):
        # SPF passes for other.example and DKIM passes for other.example: neither is aligned.
        d = self.dmarc("a@sender.example", "b@other.example", "127.0.0.2", signer="other.example")
        self.assertEqual(("fail", False, False), (d["result"], d["dkim_aligned"], d["spf_aligned"]))

    def test_relaxed_alignment_accepts_a_subdomain_signature(self):
        d = self.dmarc("a@sender.example", "b@other.example", signer="mail.sender.example")
        self.assertEqual(("pass", True), (d["result"], d["dkim_aligned"]))

    def test_strict_alignment_needs_the_exact_domain(self):
        d = self.dmarc("a@strict.example", "b@mail.strict.example", "127.0.0.2")
        self.assertEqual(("fail", False), (d["result"], d["spf_aligned"]))
        self.assertEqual(("s", "s", "quarantine"), (d["adkim"], d["aspf"], d["policy"]))
        d = self.dmarc("a@strict.example", "b@strict.example", "127.0.0.2")
        self.assertEqual("pass", d["result"])

    def test_record_at_the_organizational_domain_with_sp(self):
        d = self.dmarc("a@news.org.example", "b@bounce.news.org.example", "127.0.0.2")
        self.assertEqual("pass", d["result"])
        self.assertEqual(("news.org.example", "org.example"), (d["from_domain"], d["org_domain"]))
        self.assertEqual(("reject", "quarantine"), (d["policy"], d["subdomain_policy"]))
        self.assertEqual("quarantine", d["applied_policy"])

    def test_p_none_with_pct_and_ignored_invalid_values(self):
        d = self.dmarc("a@none.example", "b@none.example", "127.0.0.2")
        self.assertEqual(("pass", "none", 50, "r"), (d["result"], d["policy"], d["pct"], d["aspf"]))

    def test_invalid_record_and_two_records_are_permerror(self):
        for domain in ("invalid.example", "two.example"):
            with self.subTest(domain=domain):
                d = self.dmarc(f"a@{domain}", "b@other.example", "127.0.0.2")
                self.assertEqual("permerror", d["result"], d)

    def test_record_without_p_but_with_rua_counts_as_p_none(self):
        d = self.dmarc("a@norua.example", "b@other.example", "127.0.0.2")
        self.assertEqual(("fail", "none"), (d["result"], d["policy"]))

    def test_a_record_without_v_dmarc1_is_no_record(self):
        d = self.dmarc("a@noversion.example", "b@other.example", "127.0.0.2")
        self.assertEqual("none", d["result"])
        self.assertIsNone(d["record"])

    def test_several_from_domains_take_the_strictest_outcome(self):
        msg = (b"From: a@sender.example, b@nodmarc.example\r\nTo: t@mx.test.example\r\n"
               b"Subject: x\r\n\r\nbody\r\n")
        d = analyze(msg, mail_from="x@sender.example")["auth"]["dmarc"]
        self.assertEqual(["sender.example", "nodmarc.example"], d["from_domains"])
        self.assertEqual("pass", d["result"])  # no policy for the second restricts nothing
        msg = (b"From: a@sender.example, b@strict.example\r\nTo: t@mx.test.example\r\n"
               b"Subject: x\r\n\r\nbody\r\n")
        d = analyze(msg, client_ip="127.0.0.2", mail_from="x@sender.example")["auth"]["dmarc"]
        self.assertEqual(("fail", "strict.example"), (d["result"], d["from_domain"]))

    def test_two_from_fields_are_a_permerror(self):
        msg = b"From: a@sender.example\r\nFrom: b@sender.example\r\nSubject: x\r\n\r\nbody\r\n"
        d = analyze(msg)["auth"]["dmarc"]
        self.assertEqual("permerror", d["result"])
        self.assertIsNone(d["from_domain"])


class ReverseDns(unittest.TestCase):
    def connection(self, ip, helo="helo.example"):
        return analyze(message(), client_ip=ip, helo=helo)["connection"]

    def test_a_forward_confirmed_ptr(self):
        c = self.connection("127.0.0.2")
        self.assertEqual((["mail.sender.example"], True), (c["ptr"], c["fcrdns"]))

    def test_a_ptr_that_does_not_point_back(self):
        c = self.connection("127.0.0.3")
        self.assertEqual((["unconfirmed.example"], False), (c["ptr"], c["fcrdns"]))

    def test_no_ptr(self):
        c = self.connection("127.0.0.4")
        self.assertEqual(([], False), (c["ptr"], c["fcrdns"]))

    def test_helo_name_resolution(self):
        self.assertEqual("match", self.connection("127.0.0.2", "helo.example")["helo_dns"])
        self.assertEqual("mismatch", self.connection("127.0.0.3", "helo.example")["helo_dns"])
        self.assertEqual("none", self.connection("127.0.0.2", "nxhost.example")["helo_dns"])

    def test_authentication_results_carries_every_method(self):
        ar = analyze(sign(message(), "rsa2048"), client_ip="127.0.0.2")["auth"]["authentication_results"]
        self.assertTrue(ar.startswith("mx.test.example; iprev=pass policy.iprev=127.0.0.2"), ar)
        for part in ("spf=pass smtp.mailfrom=x@sender.example", "spf=pass smtp.helo=helo.example",
                     "dkim=pass header.d=sender.example", "header.s=rsa2048",
                     "dmarc=pass header.from=sender.example"):
            self.assertIn(part, ar)


if __name__ == "__main__":
    unittest.main()
