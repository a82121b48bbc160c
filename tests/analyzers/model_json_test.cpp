// Every type of the analysis model read back from its JSON form is the value written (through
// the text, as at the worker's and the report's edges), and the inverses refuse what their
// serializers would never write: a missing field, a mistyped one, an unknown token.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "analyzers/analysis/analysis.hpp"
#include "core/json.hpp"

using namespace mxlens;
using namespace mxlens::analyzers;
namespace json = boost::json;
using core::auth_result;

namespace {

template <class T>
T round_trip(const T& x) {
  return core::from_json<T>(json::parse(json::serialize(core::to_json(x))));
}

// The JSON form of x with one member of the object at `path` removed or replaced.
template <class T>
json::value edited(const T& x, std::initializer_list<std::string_view> path, std::string_view key,
                   std::optional<json::value> replacement) {
  auto v = core::to_json(x);
  json::value* at = &v;
  for (auto p : path) at = &at->as_object().at(p);
  if (replacement) at->as_object()[key] = *replacement;
  else at->as_object().erase(key);
  return v;
}

spf::result spf_result() {
  spf::result r;
  r.value = auth_result::softfail;
  r.domain = "xn--e1afmkfd.xn--p1ai";
  r.domain_unicode = "пример.рф";
  r.record = "v=spf1 include:_spf.example ~all";
  r.lookups = 3;
  r.void_lookups = 1;
  r.explanation = "not allowed";
  r.records = 1;
  r.record_error = "syntax error: bad mechanism";
  r.problem = "void lookup limit";
  return r;
}

dkim::signature signature() {
  dkim::signature s;
  s.result = auth_result::pass;
  s.reason = "ok";
  s.domain = "xn--hxajbheg2az3al.xn--jxalpdlp";
  s.domain_unicode = "παράδειγμα.δοκιμή";
  s.selector = "s1";
  s.algorithm = "rsa-sha256";
  s.identity = "@xn--hxajbheg2az3al.xn--jxalpdlp";
  s.key_type = "rsa";
  s.key_bits = 2048;
  s.canonicalization = "relaxed/simple";
  s.signed_headers = {"From", "From", "Subject"};
  s.body_length = 120;
  s.body_hash_ok = true;
  s.timestamp = 1'800'000'000;
  s.expiration = 1'800'086'400;
  s.b_prefix = "dGVzdHNpZ25h";
  s.aligned = true;
  return s;
}

dmarc::result dmarc_result() {
  dmarc::result r;
  r.value = auth_result::fail;
  r.from_domain = "news.xn--r8jz45g.xn--zckzah";
  r.from_domain_unicode = "news.例え.テスト";
  r.from_domains = {"news.xn--r8jz45g.xn--zckzah", "other.example"};
  r.org_domain = "xn--r8jz45g.xn--zckzah";
  r.org_domain_unicode = "例え.テスト";
  r.record_domain = "xn--r8jz45g.xn--zckzah";
  dmarc::record rec;
  rec.text =
      "v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; aspf=r; rua=mailto:d@x; np=reject; "
      "psd=n; t=y";
  rec.np = "reject";
  rec.psd = 'n';
  rec.testing = true;
  rec.policy = "reject";
  rec.subdomain_policy = "quarantine";
  rec.pct = 50;
  rec.adkim = 's';
  rec.rua = {"mailto:d@x"};
  rec.warnings = {"ri=abc ignored"};
  r.rec = rec;
  r.applied_policy = "quarantine";
  r.spf_aligned = true;
  r.problem = "";
  dmarc::bis_result bis;
  bis.org_domain = "news.xn--r8jz45g.xn--zckzah";
  bis.org_domain_unicode = "news.例え.テスト";
  bis.record_domain = "news.xn--r8jz45g.xn--zckzah";
  bis.applied_policy = "reject";
  bis.policy_source = "p";
  bis.differs = {"org_domain", "policy", "record_domain"};
  bis.queries = {"_dmarc.news.xn--r8jz45g.xn--zckzah"};
  r.bis = bis;
  return r;
}

rdns::result rdns_result() {
  rdns::result r;
  r.iprev = auth_result::pass;
  r.ptr = {"mail.sender.example", "other.example"};
  r.confirmed = {"mail.sender.example"};
  r.fcrdns = true;
  r.helo_dns = rdns::helo_match::mismatch;
  r.helo_addresses = {"192.0.2.9"};
  return r;
}

providers::verdicts verdicts() {
  return {{providers::verdict::accept, "250 2.0.0 OK", ""},
          {providers::verdict::defer, "421-4.7.29 Your email has been rate limited\r\n421 4.7.29 x",
           "tls"}};
}

analysis whole_analysis() {
  analysis a;
  a.rdns = rdns_result();
  a.spf = spf_result();
  a.spf_helo = spf_result();
  a.spf_helo->value = auth_result::none;
  a.dkim = {signature(), signature()};
  a.dkim[1].result = auth_result::permerror;
  a.dkim[1].key_bits.reset();
  a.dmarc = dmarc_result();
  a.authentication_results = "mx.example; spf=softfail smtp.mailfrom=a@sender.example";
  a.received_chain = {
      {"a.example ([192.0.2.1])", "mx.example (Postfix)", "ESMTPS",
       "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", "2024-12-03T10:15:02.000Z"},
      {std::nullopt, "mx.example", std::nullopt, std::nullopt, std::nullopt}};
  a.checks = {{"tls.starttls", checks::status::fail, "plaintext", json::object{{"used", false}},
               "Enable TLS"},
              {"tls.sni", checks::status::info, "No SNI", nullptr, std::nullopt}};
  a.score = {7, 0, 1, 0, std::nullopt};
  a.providers = {verdicts(), verdicts(), verdicts()};
  a.dns = json::array{json::object{{"name", "x.example"}, {"type", "TXT"}}};
  a.duration_ms = 42;
  a.errors = {"dkim: key lookup timed out"};
  return a;
}

}  // namespace

TEST_CASE("each analyzer's result reads back as written", "[model]") {
  CHECK(round_trip(spf_result()) == spf_result());
  spf::result plain;  // the optional members absent, the conditional ones left out
  CHECK(round_trip(plain) == plain);
  CHECK(round_trip(signature()) == signature());
  CHECK(round_trip(dkim::signature{}) == dkim::signature{});
  CHECK(round_trip(dmarc_result()) == dmarc_result());
  CHECK(round_trip(dmarc::result{}) == dmarc::result{});  // no record: its members are null
  CHECK(round_trip(rdns_result()) == rdns_result());
  CHECK(round_trip(rdns::result{}) == rdns::result{});
}

TEST_CASE("checks, scores, dispositions, verdicts and summaries read back as written", "[model]") {
  const checks::check c{"dkim.key_size", checks::status::warn, "A 1024-bit RSA key",
                        json::array{json::object{{"bits", 1024}}}, "Move to 2048 bits"};
  CHECK(round_trip(c) == c);
  // The catalog's columns are written for readers and come from the catalog when read.
  const auto v = core::to_json(c);
  CHECK(v.at("category") == "dkim");
  CHECK(v.at("weight") == 1.0);
  CHECK(round_trip(core::score{6.5, 5, 9, 0, std::nullopt}) ==
        core::score{6.5, 5, 9, 0, std::nullopt});
  const core::score unscored{std::nullopt, 0, 12, 12, "the analysis failed: x"};
  CHECK(round_trip(unscored) == unscored);
  const core::disposition d{550, "5.7.26", "Unauthenticated email", "gmail", "dmarc fail"};
  CHECK(round_trip(d) == d);
  CHECK(round_trip(verdicts()) == verdicts());
  const providers::judgement j{verdicts(), {}, verdicts()};
  CHECK(round_trip(j) == j);
  const core::analysis_summary s{{4, 2, 6, 0, std::nullopt},
                                 auth_result::pass,
                                 {auth_result::fail, auth_result::pass},
                                 auth_result::none,
                                 {"spf: timed out"}};
  CHECK(round_trip(s) == s);
}

TEST_CASE("the worker's job and its analysis read back as written", "[model]") {
  analysis_input in;
  in.delivery.test_id = "abcdefgh";
  in.delivery.received_at = 1'800'000'000'000;
  in.delivery.connection.client_ip = "192.0.2.1";
  in.delivery.connection.helo = "mail.sender.example";
  in.delivery.tls.used = true;
  in.delivery.tls.failed_handshakes = {{1'799'999'999'000,
                                        "192.0.2.1",
                                        "no shared cipher",
                                        {},
                                        core::failure_class::cipher,
                                        "s0",
                                        1.0}};
  in.delivery.envelope.mail_from = "a@sender.example";
  in.delivery.envelope.body = core::body_type::eight_bit_mime;
  in.delivery.data.bare_lf = 2;
  in.have_session = false;
  in.receiver = "mx.example";
  in.bulk = true;
  CHECK(round_trip(in) == in);
  auto with_raw = in;
  with_raw.delivery.raw = "Subject: x\r\n\r\nbody\r\n";  // the job's second frame, not its JSON
  with_raw.delivery.transcript = {{1.5, core::direction::client, "EHLO x"}};
  CHECK(round_trip(with_raw) == in);

  CHECK(round_trip(whole_analysis()) == whole_analysis());
  const auto failed = failed_analysis("worker died");
  CHECK(round_trip(failed) == failed);
  CHECK(summary_of(round_trip(whole_analysis())) == summary_of(whole_analysis()));
}

TEST_CASE("an analysis that failed is unscored, never 10 (CHECKS.md \"Score\")", "[model]") {
  const auto failed = failed_analysis("analysis worker crashed (signal 9, Killed)");
  CHECK_FALSE(failed.score.value);
  CHECK(failed.score.unscored ==
        std::optional<std::string>(
            "the analysis failed: analysis worker crashed (signal 9, Killed)"));
  CHECK(failed.score.passed == 0);
  CHECK(failed.score.errors == static_cast<int>(checks::catalog().size()));
  const auto v = core::to_json(failed);
  CHECK(v.at("score").at("value").is_null());
  CHECK(v.at("score").at("unscored") ==
        "the analysis failed: analysis worker crashed (signal 9, Killed)");
  // The summary the server reads says the same.
  CHECK(summary_of(failed).score == failed.score);
}

TEST_CASE("a report stored before domains had two forms gets the U-labels from the A-labels",
          "[model]") {
  auto spf = core::from_json<spf::result>(edited(spf_result(), {}, "domain_unicode", std::nullopt));
  CHECK(spf.domain_unicode == "пример.рф");
  auto sig =
      core::from_json<dkim::signature>(edited(signature(), {}, "domain_unicode", std::nullopt));
  CHECK(sig.domain_unicode == "παράδειγμα.δοκιμή");
  auto old = edited(dmarc_result(), {}, "from_domain_unicode", std::nullopt);
  old.as_object().erase("org_domain_unicode");
  auto dmarc = core::from_json<dmarc::result>(old);
  CHECK(dmarc.from_domain_unicode == "news.例え.テスト");
  CHECK(dmarc.org_domain_unicode == "例え.テスト");
  CHECK(core::from_json<dmarc::result>(
            edited(dmarc::result{}, {}, "from_domain_unicode", std::nullopt))
            .from_domain_unicode == std::nullopt);
}

TEST_CASE("the inverses refuse what no serializer writes", "[model]") {
  using T = std::exception;
  CHECK_THROWS_AS(core::from_json<spf::result>(edited(spf_result(), {}, "result", "maybe")), T);
  CHECK_THROWS_AS(core::from_json<spf::result>(edited(spf_result(), {}, "lookups", std::nullopt)),
                  T);
  CHECK_THROWS_AS(core::from_json<spf::result>(edited(spf_result(), {}, "lookups", "3")), T);
  CHECK_THROWS_AS(core::from_json<dkim::signature>(edited(signature(), {}, "result", "Pass")), T);
  CHECK_THROWS_AS(
      core::from_json<dkim::signature>(edited(signature(), {}, "signed_headers", std::nullopt)), T);
  CHECK_THROWS_AS(core::from_json<dmarc::result>(edited(dmarc_result(), {}, "adkim", "x")), T);
  CHECK_THROWS_AS(core::from_json<dmarc::result>(edited(dmarc_result(), {}, "pct", std::nullopt)),
                  T);
  CHECK_THROWS_AS(core::from_json<rdns::result>(edited(rdns_result(), {}, "helo_dns", "yes")), T);
  CHECK_THROWS_AS(core::from_json<rdns::result>(edited(rdns_result(), {}, "iprev", "neutral!")), T);
  const checks::check c{"tls.sni", checks::status::info, "x", nullptr, std::nullopt};
  CHECK_THROWS_AS(core::from_json<checks::check>(edited(c, {}, "id", "tls.nope")), T);
  CHECK_THROWS_AS(core::from_json<checks::check>(edited(c, {}, "status", "passed")), T);
  CHECK_THROWS_AS(core::from_json<providers::verdicts>(edited(verdicts(), {}, "verdict", "ok")), T);
  CHECK_THROWS_AS(
      core::from_json<analysis>(edited(whole_analysis(), {"auth"}, "dmarc", std::nullopt)), T);
  CHECK_THROWS_AS(
      core::from_json<analysis>(edited(whole_analysis(), {"analysis"}, "errors", json::object{})),
      T);
  core::analysis_summary s;
  s.score.value = 10;  // a score has a value or says why not (core/types.hpp)
  CHECK_THROWS_AS(
      core::from_json<core::analysis_summary>(edited(s, {"auth"}, "dkim", std::nullopt)), T);
  CHECK_THROWS_AS(
      core::from_json<core::analysis_summary>(edited(s, {"auth", "spf"}, "result", "softpass")), T);
}

TEST_CASE("the wire tokens are the report's spelling, both ways", "[model]") {
  for (auto r :
       {auth_result::none, auth_result::pass, auth_result::fail, auth_result::softfail,
        auth_result::neutral, auth_result::temperror, auth_result::permerror, auth_result::policy})
    CHECK(core::auth_result_of(core::to_string(r)) == r);
  CHECK(core::to_string(auth_result::temperror) == "temperror");
  for (auto s : {checks::status::pass, checks::status::warn, checks::status::fail,
                 checks::status::info, checks::status::skip, checks::status::error})
    CHECK(checks::status_of(checks::to_string(s)) == s);
  for (auto m : {rdns::helo_match::match, rdns::helo_match::mismatch, rdns::helo_match::none,
                 rdns::helo_match::literal, rdns::helo_match::temperror})
    CHECK(rdns::helo_match_of(rdns::to_string(m)) == m);
  for (auto v : {providers::verdict::accept, providers::verdict::defer, providers::verdict::reject})
    CHECK(providers::verdict_of(providers::to_string(v)) == v);
  CHECK_THROWS_AS(checks::status_of("PASS"), std::invalid_argument);
  CHECK_THROWS_AS(core::auth_result_of(""), std::invalid_argument);
}
