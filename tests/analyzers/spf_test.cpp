// SPF by our own evaluator: the record parser, the macro expander (RFC 7208 §7.4's examples) and
// check_host() over a table of DNS answers, with expectations written from RFC 7208.
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <utility>

#include "analyzers/spf/evaluate.hpp"
#include "analyzers/spf/macro.hpp"
#include "analyzers/spf/record.hpp"

using namespace mxlens::analyzers;
using dns::rr_type;
using mxlens::core::auth_result;

namespace {

// Authoritative for everything, like the DNS double of the fuzz targets: a name with no record
// is NXDOMAIN, a name without the type asked is NODATA; a name in `broken` times out.
struct zone {
  std::map<std::pair<std::string, rr_type>, std::vector<std::string>> records;
  std::set<std::string> broken;
  std::vector<std::pair<std::string, rr_type>> asked;

  zone& add(const std::string& name, rr_type t, std::string value) {
    records[{name, t}].push_back(std::move(value));
    return *this;
  }
  dns::answer query(const std::string& name, rr_type t) {
    asked.emplace_back(name, t);
    dns::answer a;
    if (broken.count(name)) {
      a.error = "timeout";
      return a;
    }
    if (auto it = records.find({name, t}); it != records.end()) {
      a.state = dns::status::ok;
      a.records = it->second;
      return a;
    }
    const bool exists = std::any_of(records.begin(), records.end(),
                                    [&](const auto& r) { return r.first.first == name; });
    a.state = exists ? dns::status::nodata : dns::status::nxdomain;
    return a;
  }
};

spf::result check(zone& z, const std::string& ip = "192.0.2.3",
                  const std::string& sender = "strong-bad@email.example.com") {
  spf::host_request r;
  r.sender = sender;
  r.domain = sender.substr(sender.rfind('@') + 1);
  r.client_ip = ip;
  r.helo = "mail.example.org";
  r.receiver = "mx.test.example";
  r.now = 1700000000;
  return spf::check_host([&z](const std::string& n, rr_type t) { return z.query(n, t); }, r);
}

// The record of email.example.com.
zone with(const std::string& record) {
  zone z;
  z.add("email.example.com", rr_type::txt, record);
  return z;
}

std::string term_error(const std::string& record) {
  const auto r = spf::parse_record(record);
  return r.error;
}

spf::macro_context rfc_context(const std::string& ip = "192.0.2.3") {
  spf::macro_context c;
  c.sender = "strong-bad@email.example.com";
  c.local_part = "strong-bad";
  c.sender_domain = c.domain = "email.example.com";
  c.client_ip = ip;
  c.helo = "mail.example.org";
  c.receiver = "mx.test.example";
  c.now = 1700000000;
  return c;
}

}  // namespace

TEST_CASE("the parser keeps every term, its position and its syntax error (§4.6.1, §12)", "[spf]") {
  const auto r =
      spf::parse_record("v=spf1  ip4:192.0.2.0/24 -include:_spf.example  redirect=x.example ");
  REQUIRE(r.terms.size() == 3);
  CHECK(r.error.empty());
  CHECK(r.terms[0].position == 8);
  CHECK(r.terms[0].cidr4 == 24);
  CHECK(r.terms[1].position == 25);
  CHECK(r.terms[1].qualifier == '-');
  CHECK(r.terms[1].kind == spf::term_kind::include);
  CHECK(r.terms[2].kind == spf::term_kind::redirect);
  CHECK(r.terms[2].position == 48);

  const auto bad = spf::parse_record("v=spf1 a mx:foo.example/33 -all");
  CHECK(bad.terms[1].error.find("IPv4 CIDR length") != std::string::npos);
  CHECK(bad.error_position == 23);
  CHECK(bad.error.find("mx:foo.example/33") != std::string::npos);
  CHECK(bad.terms[0].error.empty());
  CHECK(bad.terms[2].error.empty());
}

TEST_CASE("CIDR lengths: /0 is valid, a leading zero is not, dual-CIDR forms (§5.6, §12)",
          "[spf]") {
  CHECK(term_error("v=spf1 ip4:0.0.0.0/0 ip6:::/0 a/0 mx/0 -all").empty());
  CHECK(term_error("v=spf1 a//0 a/0//0 mx:m.example/24//64 a:a.example//128").empty());
  CHECK_FALSE(term_error("v=spf1 ip4:192.0.2.0/032 -all").empty());
  CHECK_FALSE(term_error("v=spf1 ip6:2001:db8::/064 -all").empty());
  CHECK_FALSE(term_error("v=spf1 a/24/64").empty());
  CHECK_FALSE(term_error("v=spf1 ip6:::/129").empty());
  CHECK_FALSE(term_error("v=spf1 ip4:192.0.2.1/").empty());
  CHECK_FALSE(term_error("v=spf1 ip4:192.0.02.1").empty());  // qnum has no leading zero
  CHECK_FALSE(term_error("v=spf1 ip4:1.2.3").empty());
  const auto dual = spf::parse_record("v=spf1 a/0//0 a//64");
  CHECK(dual.terms[0].cidr4 == 0);
  CHECK(dual.terms[0].cidr6 == 0);
  CHECK(dual.terms[1].cidr4 == 32);
  CHECK(dual.terms[1].cidr6 == 64);
}

TEST_CASE("domain-spec: it ends in a top label or a macro (§7.1)", "[spf]") {
  CHECK(term_error("v=spf1 a:example.com. exists:%{i}.x.example include:%{d}").empty());
  CHECK_FALSE(term_error("v=spf1 a:foo -all").empty());              // a single label
  CHECK_FALSE(term_error("v=spf1 a:foo.example.123 -all").empty());  // all-numeric top label
  CHECK_FALSE(term_error("v=spf1 a:. -all").empty());                // a trailing dot only
  // Written without a macro, a name no query can be made for, wherever the term stands.
  CHECK_FALSE(term_error("v=spf1 ip4:192.0.2.3 a:foo..example.com -all").empty());
  CHECK_FALSE(term_error("v=spf1 a:" + std::string(64, 'x') + ".example.com -all").empty());
  CHECK_FALSE(term_error("v=spf1 a: -all").empty());
  CHECK_FALSE(term_error("v=spf1 include:foo.example/24").empty());
  // A domain-spec may hold ':' and '/' (macro-literal); a CIDR length is what ends the term.
  const auto slash = spf::parse_record("v=spf1 a:foo:bar/baz.example.com mx:m.example/24//64");
  CHECK(slash.error.empty());
  CHECK(slash.terms[0].domain_spec == "foo:bar/baz.example.com");
  CHECK(slash.terms[1].domain_spec == "m.example");
  CHECK(slash.terms[1].cidr4 == 24);
  CHECK(slash.terms[1].cidr6 == 64);
  CHECK_FALSE(term_error("v=spf1 a:example.com:8080").empty());
  CHECK_FALSE(term_error("v=spf1 -all/8").empty());
  CHECK_FALSE(term_error("v=spf1 ptr/0 -all").empty());
  CHECK(spf::target_error("foo..example") == "an empty label");
  CHECK(spf::target_error("foo") == "a single label");
  CHECK_FALSE(spf::target_error("foo.123").empty());
  CHECK(spf::target_error("%5B192.0.2.1%5D").empty());  // a HELO literal in %{H}: just a name
  CHECK_FALSE(spf::usable_domain("[192.0.2.1]"));
  CHECK_FALSE(spf::usable_domain("192.0.2.1"));
  CHECK_FALSE(spf::usable_domain("localhost"));
  CHECK(spf::usable_domain("mail.example.com."));
  CHECK_FALSE(spf::target_error(".").empty());
  CHECK(spf::target_error("mail.example.com.").empty());
}

TEST_CASE("modifiers: redirect and exp at most once, unknown ones well formed (§6, §12)", "[spf]") {
  CHECK_FALSE(term_error("v=spf1 redirect=a.example redirect=b.example").empty());
  CHECK_FALSE(term_error("v=spf1 -all exp=a.example exp=b.example").empty());
  CHECK_FALSE(term_error("v=spf1 -all exp=").empty());
  CHECK_FALSE(term_error("v=spf1 1foo=bar -all").empty());
  CHECK_FALSE(term_error("v=spf1 foo=%x -all").empty());
  CHECK(term_error("v=spf1 foo=bar moo.cow-far_out=man:dog/cat -all").empty());
  CHECK_FALSE(term_error("v=spf1 -redirect=a.example").empty());
}

TEST_CASE("macro syntax: letters, %, and the exp-only letters (§7.1)", "[spf]") {
  CHECK(term_error("v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} exists:%%.%_.%-.x.example").empty());
  CHECK_FALSE(term_error("v=spf1 exists:%{x}.example").empty());
  CHECK_FALSE(term_error("v=spf1 exists:%{d}.example%").empty());
  CHECK_FALSE(term_error("v=spf1 exists:%{d}%x.example").empty());
  CHECK_FALSE(term_error("v=spf1 exists:%{c}.example").empty());  // exp text only
  CHECK_FALSE(term_error("v=spf1 exists:%{t}.example").empty());
  CHECK_FALSE(term_error("v=spf1 exists:%{d0}").empty());
  CHECK_FALSE(term_error("v=spf1 exists:%{d").empty());
  CHECK(spf::macro_error("%{c} %{r} %{t}", spf::macro_place::explanation).error.empty());
  CHECK_FALSE(spf::macro_error("50% off", spf::macro_place::explanation).error.empty());
}

TEST_CASE("bytes outside printable ASCII are a syntax error, named escaped (§4.6.1)", "[spf]") {
  CHECK(term_error("v=spf1 a:mail\x80.example -all").find("a:mail\\x80.example") !=
        std::string::npos);
  CHECK_FALSE(term_error("v=spf1 ip4:192.0.2.1\x01 -all").empty());
  CHECK_FALSE(term_error("v=spf1 ip4:192.0.2.1\t-all").empty());
  CHECK_FALSE(term_error("v=spf1 \xc3\xa9").empty());
}

TEST_CASE("macro expansion gives RFC 7208 §7.4's examples", "[spf]") {
  const auto c = rfc_context();
  CHECK(spf::expand("%{s}", c) == "strong-bad@email.example.com");
  CHECK(spf::expand("%{o}", c) == "email.example.com");
  CHECK(spf::expand("%{d}", c) == "email.example.com");
  CHECK(spf::expand("%{d4}", c) == "email.example.com");
  CHECK(spf::expand("%{d3}", c) == "email.example.com");
  CHECK(spf::expand("%{d2}", c) == "example.com");
  CHECK(spf::expand("%{d1}", c) == "com");
  CHECK(spf::expand("%{dr}", c) == "com.example.email");
  CHECK(spf::expand("%{d2r}", c) == "example.email");
  CHECK(spf::expand("%{l}", c) == "strong-bad");
  CHECK(spf::expand("%{l-}", c) == "strong.bad");
  CHECK(spf::expand("%{lr}", c) == "strong-bad");
  CHECK(spf::expand("%{lr-}", c) == "bad.strong");
  CHECK(spf::expand("%{l1r-}", c) == "strong");
  CHECK(spf::expand("%{ir}.%{v}._spf.%{d2}", c) == "3.2.0.192.in-addr._spf.example.com");
  CHECK(spf::expand("%{lr-}.lp._spf.%{d2}", c) == "bad.strong.lp._spf.example.com");
  CHECK(spf::expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", c) ==
        "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  CHECK(spf::expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", c) ==
        "3.2.0.192.in-addr.strong.lp._spf.example.com");
  CHECK(spf::expand("%{d2}.trusted-domains.example.net", c) ==
        "example.com.trusted-domains.example.net");
  CHECK(spf::expand("%{ir}.%{v}._spf.%{d2}", rfc_context("2001:db8::cb01")) ==
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
  CHECK(spf::expand("%%%_%-", c) == "% %20");
  CHECK(spf::expand("%{p}", c) == "unknown");
  CHECK(spf::expand("%{c} %{r} %{t}", c) == "192.0.2.3 mx.test.example 1700000000");
  CHECK(spf::expand("%{c}", rfc_context("2001:db8::cb01")) == "2001:db8::cb01");
  auto spaced = c;
  spaced.local_part = "a b/c";
  CHECK(spf::expand("%{L}", spaced) == "a%20b%2Fc");  // uppercase: URL-escaped
}

TEST_CASE("check_host: results, the deciding term and the terms' lookups (§4, §5)", "[spf]") {
  auto z = with("v=spf1 include:_spf.example.net ip4:192.0.2.3 -all");
  z.add("_spf.example.net", rr_type::txt, "v=spf1 a:h.example.net ?all");
  z.add("h.example.net", rr_type::a, "198.51.100.1");
  auto r = check(z);
  CHECK(r.value == auth_result::pass);
  CHECK(r.decided_by == "ip4:192.0.2.3");
  CHECK(r.lookups == 2);
  REQUIRE(r.terms.size() == 3);
  CHECK(r.terms[0].lookups == 2);
  CHECK_FALSE(r.terms[0].matched);
  CHECK(r.terms[1].matched);
  CHECK(r.terms[1].position == 32);

  CHECK(check(z, "198.51.100.9").value == auth_result::fail);
  CHECK(check(z, "198.51.100.1").decided_by == "include:_spf.example.net");
  CHECK(check(z, "2001:db8::1").value == auth_result::fail);
}

TEST_CASE("check_host: none, several records, temperror (§4.3, §4.4, §4.5)", "[spf]") {
  zone none;
  none.add("email.example.com", rr_type::txt, "google-site-verification=x");
  CHECK(check(none).value == auth_result::none);
  zone nx;
  CHECK(check(nx).value == auth_result::none);
  auto two = with("v=spf1 -all");
  two.add("email.example.com", rr_type::txt, "v=spf1 +all");
  CHECK(check(two).value == auth_result::permerror);
  CHECK(check(two).record_error == "more than one SPF record");
  zone down;
  down.broken.insert("email.example.com");
  CHECK(check(down).value == auth_result::temperror);
  zone z;
  CHECK(check(z, "192.0.2.3", "x@localhost").value == auth_result::none);  // not multi-label
  CHECK(z.asked.empty());
  // §4.3: a sender without a local-part is postmaster@domain (the caller's to form).
  auto pm = with("v=spf1 exists:%{l}.allow.example.com -all");
  pm.add("postmaster.allow.example.com", rr_type::a, "127.0.0.2");
  CHECK(check(pm, "192.0.2.3", "postmaster@email.example.com").value == auth_result::pass);
}

TEST_CASE("CIDR /0 and IPv4-mapped clients (§5.6, §5)", "[spf]") {
  auto v4 = with("v=spf1 ip4:0.0.0.0/0 -all");
  CHECK(check(v4, "203.0.113.9").value == auth_result::pass);
  auto v6 = with("v=spf1 ip6:::/0 -all");
  CHECK(check(v6, "2001:db8::1").value == auth_result::pass);
  CHECK(check(v6, "203.0.113.9").value == auth_result::fail);
  auto a = with("v=spf1 a:h.example.com/0 -all");
  a.add("h.example.com", rr_type::a, "10.0.0.1");
  CHECK(check(a, "203.0.113.9").value == auth_result::pass);
  auto dual = with("v=spf1 a:h.example.com//0 -all");
  dual.add("h.example.com", rr_type::aaaa, "2001:db8::99");
  CHECK(check(dual, "2001:db8:ffff::1").value == auth_result::pass);
  CHECK(check(dual, "10.0.0.1").value == auth_result::fail);
  auto mx = with("v=spf1 mx/0//0 -all");
  mx.add("email.example.com", rr_type::mx, "10 m.example.com");
  mx.add("m.example.com", rr_type::a, "10.0.0.1");
  CHECK(check(mx, "203.0.113.9").value == auth_result::pass);

  auto mapped = with("v=spf1 ip4:192.0.2.3 -all");
  CHECK(check(mapped, "::ffff:192.0.2.3").value == auth_result::pass);
  auto mapped6 = with("v=spf1 ip6:::ffff:192.0.2.3 -all");
  CHECK(check(mapped6, "::ffff:192.0.2.3").value == auth_result::fail);
}

TEST_CASE("modifiers: redirect wherever it stands, only when nothing matched (§6.1)", "[spf]") {
  auto z = with("v=spf1 redirect=other.example.com ip4:192.0.2.3");
  z.add("other.example.com", rr_type::txt, "v=spf1 -all");
  CHECK(check(z).value == auth_result::pass);
  CHECK(check(z, "203.0.113.9").value == auth_result::fail);
  CHECK(check(z, "203.0.113.9").decided_by == "redirect=other.example.com");
  const auto followed = check(z, "203.0.113.9");
  REQUIRE(followed.terms.size() == 2);
  CHECK(followed.terms[0].matched);  // the redirect, followed
  CHECK(followed.terms[0].lookups == 1);
  CHECK_FALSE(followed.terms[1].matched);
  auto all = with("v=spf1 redirect=other.example.com ~all");
  all.add("other.example.com", rr_type::txt, "v=spf1 -all");
  CHECK(check(all, "203.0.113.9").value == auth_result::softfail);
  auto nowhere = with("v=spf1 redirect=nowhere.example.com");
  CHECK(check(nowhere).value == auth_result::permerror);
  auto include = with("v=spf1 include:nowhere.example.com -all");
  CHECK(check(include).value == auth_result::permerror);
}

TEST_CASE("a target name a macro made invalid is one that does not exist (§7.1, §4.3)", "[spf]") {
  // A domain-spec's syntax is checked as written, not after expansion (the RFC 7208 test suite's
  // invalid-hello-macro): a mechanism does not match, and nothing is asked.
  auto single = with("v=spf1 exists:%{l} -all");
  CHECK(check(single, "192.0.2.3", "foo@email.example.com").value == auth_result::fail);
  CHECK(single.asked.back().first != "foo");
  auto empty = with("v=spf1 a:%{l}.email.example.com -all");
  CHECK(check(empty, "192.0.2.3", "a.@email.example.com").value == auth_result::fail);
  auto numeric = with("v=spf1 a:%{i} ?all");
  CHECK(check(numeric).value == auth_result::neutral);
  // include: and redirect= evaluate the name: "none" for a malformed one (§4.3), a permerror.
  auto redirect = with("v=spf1 redirect=%{l}");
  CHECK(check(redirect, "192.0.2.3", "foo@email.example.com").value == auth_result::permerror);
  auto include = with("v=spf1 include:%{l} -all");
  const auto r = check(include, "192.0.2.3", "foo@email.example.com");
  CHECK(r.value == auth_result::permerror);
  CHECK(r.terms[0].error.find("a single label") != std::string::npos);
  // Nothing else is checked after expansion: a domain literal as HELO is a name that does not
  // exist, no match.
  auto literal = with("v=spf1 a:%{H} -all");
  spf::host_request h;
  h.sender = "x@email.example.com";
  h.domain = "email.example.com";
  h.client_ip = "192.0.2.3";
  h.helo = "[192.0.2.3]";
  const auto lit = spf::check_host(
      [&literal](const std::string& n, rr_type t) { return literal.query(n, t); }, h);
  CHECK(lit.value == auth_result::fail);
  CHECK(literal.asked.back().first == "%5b192.0.2.3%5d");
}

TEST_CASE("limits: 10 terms, 2 void lookups, 10 MX names, the first 10 PTR names (§4.6.4)",
          "[spf]") {
  std::string record = "v=spf1";
  for (int i = 1; i <= 11; ++i) record += " a:h" + std::to_string(i) + ".example.com";
  auto terms = with(record + " ip4:192.0.2.3 -all");
  for (int i = 1; i <= 11; ++i)
    terms.add("h" + std::to_string(i) + ".example.com", rr_type::a, "10.0.0.1");
  auto r = check(terms);
  CHECK(r.value == auth_result::permerror);
  CHECK(r.lookups == 11);
  CHECK_FALSE(r.terms[10].error.empty());

  auto voids = with("v=spf1 a:nx1.example.com mx:nx2.example.com a:nx3.example.com ip4:192.0.2.3");
  r = check(voids);
  CHECK(r.value == auth_result::permerror);
  CHECK(r.void_lookups == 3);
  auto two = with("v=spf1 a:nx1.example.com mx:nx2.example.com ip4:192.0.2.3 -all");
  CHECK(check(two).value == auth_result::pass);  // NXDOMAIN: no match, not an error

  auto mx = with("v=spf1 mx -all");
  for (int i = 1; i <= 11; ++i)
    mx.add("email.example.com", rr_type::mx, "10 m" + std::to_string(i) + ".example.com");
  mx.add("m1.example.com", rr_type::a, "192.0.2.3");
  CHECK(check(mx).value == auth_result::permerror);
  auto ten = with("v=spf1 mx -all");
  for (int i = 1; i <= 10; ++i)
    ten.add("email.example.com", rr_type::mx, "10 m" + std::to_string(i) + ".example.com");
  ten.add("m10.example.com", rr_type::a, "192.0.2.3");
  CHECK(check(ten).value == auth_result::pass);

  auto ptr = with("v=spf1 ptr -all");
  for (int i = 1; i <= 11; ++i) {
    const auto name = "p" + std::to_string(i) + ".email.example.com";
    ptr.add("3.2.0.192.in-addr.arpa", rr_type::ptr, name);
    if (i == 11) ptr.add(name, rr_type::a, "192.0.2.3");
  }
  CHECK(check(ptr).value == auth_result::fail);  // the 11th name is never looked at
}

TEST_CASE("ptr and %{p}: validated names, compared without case (§5.5, §7.3)", "[spf]") {
  auto z = with("v=spf1 ptr:Example.COM -all");
  z.add("3.2.0.192.in-addr.arpa", rr_type::ptr, "other.example.net");
  z.add("3.2.0.192.in-addr.arpa", rr_type::ptr, "Mail.EXAMPLE.com");
  z.add("mail.example.com", rr_type::a, "192.0.2.3");
  CHECK(check(z).value == auth_result::pass);
  auto p = with("v=spf1 exists:%{p}.allow.example.com -all");
  p.add("3.2.0.192.in-addr.arpa", rr_type::ptr, "unvalidated.email.example.com");
  p.add("3.2.0.192.in-addr.arpa", rr_type::ptr, "mail.example.net");
  p.add("mail.example.net", rr_type::a, "192.0.2.3");
  p.add("mail.example.net.allow.example.com", rr_type::a, "127.0.0.2");
  CHECK(check(p).value == auth_result::pass);
  auto none = with("v=spf1 exists:%{p}.allow.example.com -all");
  none.add("unknown.allow.example.com", rr_type::a, "127.0.0.2");
  CHECK(check(none).value == auth_result::pass);
}

TEST_CASE("exp: the explanation of a fail, with its own macros (§6.2, §7)", "[spf]") {
  auto z = with("v=spf1 -all exp=why.%{d}");
  z.add("why.email.example.com", rr_type::txt, "%{i} may not send as %{s}; ask %{r} at %{c}");
  auto r = check(z);
  CHECK(r.value == auth_result::fail);
  CHECK(r.explanation ==
        "192.0.2.3 may not send as strong-bad@email.example.com; ask mx.test.example at 192.0.2.3");
  auto bad = with("v=spf1 -all exp=why.email.example.com");
  bad.add("why.email.example.com", rr_type::txt, "100% wrong");
  r = check(bad);
  CHECK(r.value == auth_result::fail);
  CHECK_FALSE(r.explanation);
  auto missing = with("v=spf1 -all exp=nowhere.email.example.com");
  CHECK(check(missing).value == auth_result::fail);
  CHECK_FALSE(check(missing).explanation);
  // §6.2: an include's exp= is not used; a redirect's target's is.
  auto redirect = with("v=spf1 exp=outer.example.com redirect=inner.example.com");
  redirect.add("inner.example.com", rr_type::txt, "v=spf1 -all exp=why.inner.example.com");
  redirect.add("why.inner.example.com", rr_type::txt, "inner");
  redirect.add("outer.example.com", rr_type::txt, "outer");
  CHECK(check(redirect).explanation == "inner");
}

TEST_CASE("an expansion past 253 octets loses labels on its left, in one pass (§7.3)", "[spf]") {
  // 4,000 %{d} of email.example.com: 68,000 octets and 8,000 dots, cut in one pass.
  std::string spec;
  for (int i = 0; i < 4000; ++i) spec += "%{d}";
  auto z = with("v=spf1 exists:" + spec + ".x.example -all");
  const auto r = check(z);
  CHECK(r.value == auth_result::fail);
  const auto& asked = z.asked.back().first;
  CHECK(asked.size() <= 253);
  CHECK(asked.size() > 253 - 9);  // whole labels went ("comemail" the longest), as few as needed
  CHECK(asked.substr(asked.size() - 10) == ".x.example");
  CHECK(asked.front() != '.');
}

TEST_CASE("long records and records with bytes outside ASCII (§3.3, §4.6.1)", "[spf]") {
  std::string record = "v=spf1";
  for (int i = 0; i < 60; ++i) record += " ip4:198.51.100." + std::to_string(i);
  record += " ip4:192.0.2.3 -all";
  REQUIRE(record.size() >= 900);
  auto z = with(record);
  CHECK(check(z).value == auth_result::pass);
  CHECK(check(z, "203.0.113.1").value == auth_result::fail);

  auto bytes = with("v=spf1 a:mail\x80.example.com ip4:192.0.2.3 -all");
  const auto r = check(bytes);
  CHECK(r.value == auth_result::permerror);
  CHECK(r.record_error.find("\\x80") != std::string::npos);
  auto bom = with("\xef\xbb\xbfv=spf1 ip4:192.0.2.3 -all");
  CHECK(check(bom).value == auth_result::none);
  CHECK(check(bom).record_error.find("\\xEF\\xBB\\xBF") != std::string::npos);
}
