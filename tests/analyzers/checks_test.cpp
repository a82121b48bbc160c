// The score as CHECKS.md defines it, and the providers' reply layout and rule order.
#include <catch2/catch.hpp>
#include <set>

#include "analyzers/checks/checks.hpp"
#include "analyzers/providers/providers.hpp"

using namespace mxlens::analyzers;

namespace {
checks::check c(const char* id, const char* status) {
  return {id, checks::status_of(status), "s", nullptr, std::nullopt};
}
}  // namespace

TEST_CASE("score: 10 minus the costs, a warn costs half, one decimal (CHECKS.md)", "[checks]") {
  // tls.starttls fail (3) + dns.ptr warn (1.5 / 2) + smtp.ehlo warn (0.5 / 2) = 4.0
  auto s = checks::score({c("tls.starttls", "fail"), c("dns.ptr", "warn"), c("smtp.ehlo", "warn"),
                          c("spf.result", "pass"), c("tls.sni", "info"), c("dkim.valid", "skip")});
  CHECK(s.value == Approx(6.0));
  CHECK(s.passed == 1);
  CHECK(s.total == 4);  // passed, warned or failed
  CHECK(s.errors == 0);
  CHECK_FALSE(s.unscored);

  // 10 - 0.125 = 9.875, shown with one decimal
  CHECK(checks::score({c("dmarc.reporting", "warn")}).value == Approx(9.9));
  // Never below zero.
  std::vector<checks::check> many;
  for (auto id : {"tls.starttls", "spf.result", "dkim.valid", "dmarc.result", "hdr.from",
                  "tls.version", "dns.ptr", "dns.fcrdns"})
    many.push_back(c(id, "fail"));
  CHECK(checks::score(many).value == 0);
}

TEST_CASE("score: an error costs its whole weight, like a fail (not evaluated is not passed)",
          "[checks]") {
  // dmarc.result error (2) on top of the 4.0 above.
  auto s = checks::score({c("tls.starttls", "fail"), c("dns.ptr", "warn"), c("smtp.ehlo", "warn"),
                          c("spf.result", "pass"), c("tls.sni", "info"), c("dkim.valid", "skip"),
                          c("dmarc.result", "error")});
  CHECK(s.value == Approx(4.0));
  CHECK(s.passed == 1);
  CHECK(s.errors == 1);
  CHECK(s.total == 5);  // passed, warned, failed or could not be evaluated

  // The same sender twice: its DNS answering with failures, and its DNS not answering at all
  // (the DNS-dependent checks then say error, the ones that depend on them skip). Breaking the
  // DNS never raises the score.
  const std::vector<checks::check> rest{c("hdr.from", "pass"), c("hdr.date", "pass"),
                                        c("hdr.message_id", "pass"), c("smtp.ehlo", "pass")};
  auto failing = rest;
  for (auto [id, status] :
       std::initializer_list<std::pair<const char*, const char*>>{{"dns.ptr", "fail"},
                                                                  {"dns.fcrdns", "fail"},
                                                                  {"smtp.helo_dns", "fail"},
                                                                  {"spf.record", "fail"},
                                                                  {"spf.result", "warn"},
                                                                  {"dkim.valid", "fail"},
                                                                  {"dmarc.record", "fail"},
                                                                  {"dmarc.result", "fail"}})
    failing.push_back(c(id, status));
  auto silent = rest;
  for (auto id : {"dns.ptr", "dns.fcrdns", "smtp.helo_dns", "spf.record", "spf.result",
                  "dkim.valid", "dmarc.record", "dmarc.result"})
    silent.push_back(c(id, "error"));
  const auto with_failures = checks::score(failing);
  const auto without_dns = checks::score(silent);
  REQUIRE(with_failures.value);
  REQUIRE(without_dns.value);
  CHECK(*without_dns.value <= *with_failures.value);
  CHECK(without_dns.errors == 8);
}

TEST_CASE("score: nothing with a weight evaluated is unscored, never 10 or 0", "[checks]") {
  // Every check an error: what an analysis that failed has.
  std::vector<checks::check> all_errors;
  for (const auto& e : checks::catalog()) all_errors.push_back(c(e.id.data(), "error"));
  auto s = checks::score(all_errors);
  CHECK_FALSE(s.value);
  CHECK(s.errors == static_cast<int>(checks::catalog().size()));
  CHECK(s.unscored == std::optional<std::string>("no scored check could be evaluated (" +
                                                 std::to_string(s.errors) + " errors)"));
  // Nothing at all, only what does not apply, or only checks without a weight.
  CHECK(checks::score({}).unscored == std::optional<std::string>("no scored check applies"));
  CHECK_FALSE(checks::score({}).value);
  CHECK_FALSE(checks::score({c("dkim.valid", "skip"), c("tls.sni", "info")}).value);
  CHECK_FALSE(checks::score({c("provider.gmail", "warn"), c("dns.ptr", "error")}).value);
  // One check with a weight judged is enough for a score.
  CHECK(checks::score({c("hdr.from", "pass"), c("dns.ptr", "error")}).value == Approx(8.5));
}

TEST_CASE("the catalog knows every id once, and refuses an unknown one", "[checks]") {
  std::set<std::string_view> ids;
  for (const auto& e : checks::catalog()) CHECK(ids.insert(e.id).second);
  CHECK(ids.size() == 62);
  CHECK(checks::entry("tls.starttls").weight == 3);
  CHECK_THROWS_AS(checks::entry("tls.nonsense"), std::out_of_range);
}

TEST_CASE("Gmail's multi-line layout: prefix, about 80 columns, URL lines, gsmtp id",
          "[providers]") {
  auto wire = providers::gmail_wire(
      421, "4.7.29",
      {"Your email has been rate limited because this message wasn't sent over a TLS connection. "
       "Gmail requires all bulk email senders to use TLS/SSL for SMTP connections. To set up TLS "
       "for email, visit",
       "https://support.google.com/a?p=tls-ssl"},
      "abc.1");
  // The 2025 wire sample (docs/provider-replies.md), line for line.
  CHECK(wire ==
        "421-4.7.29 Your email has been rate limited because this message wasn't sent\r\n"
        "421-4.7.29 over a TLS connection. Gmail requires all bulk email senders to use\r\n"
        "421-4.7.29 TLS/SSL for SMTP connections. To set up TLS for email, visit\r\n"
        "421 4.7.29  https://support.google.com/a?p=tls-ssl abc.1 - gsmtp");
}

TEST_CASE("each provider answers for the first rule broken, in its order", "[providers]") {
  providers::facts f;
  f.client_ip = "192.0.2.1";
  f.tls = true;
  f.fcrdns = true;
  f.spf_pass = f.dkim_pass = true;
  f.dmarc_record = true;
  f.dmarc_result = mxlens::core::auth_result::pass;
  f.dmarc_policy = "reject";
  f.from_domain = "example.com";
  f.from_fields = f.from_addresses = 1;
  f.message_id_valid = true;
  auto ok = providers::judge("gmail", f, "id", 0);
  CHECK(ok.ordinary.verdict == providers::verdict::accept);
  CHECK(ok.bulk.verdict == providers::verdict::accept);

  auto plain = f;
  plain.tls = false;
  auto v = providers::judge("gmail", plain, "id", 0);
  CHECK(v.ordinary.verdict == providers::verdict::accept);  // TLS is a bulk-sender rule
  CHECK(v.bulk.rule == "tls");
  CHECK(v.bulk.reply.rfind("421-4.7.29 ", 0) == 0);

  // No PTR comes before missing authentication.
  auto worst = plain;
  worst.fcrdns = false;
  worst.spf_pass = worst.dkim_pass = false;
  CHECK(providers::judge("gmail", worst, "id", 0).ordinary.rule == "ptr");

  auto unaligned = f;
  unaligned.dmarc_result = mxlens::core::auth_result::fail;
  unaligned.dmarc_policy = "none";
  auto outlook = providers::judge("outlook", unaligned, "id", 0);
  CHECK(outlook.ordinary.verdict == providers::verdict::accept);
  CHECK(outlook.bulk.reply ==
        "550 5.7.515 Access denied, sending domain EXAMPLE.COM doesn't meet the required "
        "authentication level. The sender's domain in the 5322.From address doesn't meet the "
        "authentication requirements defined for the sender. To learn how to fix this see: "
        "https://go.microsoft.com/fwlink/p/?linkid=2319303 Spf= Pass , Dkim= Pass , DMARC= Fail");
  CHECK(providers::judge("yahoo", unaligned, "id", 0).bulk.rule == "dmarc");
}
