#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <boost/json.hpp>

#include "analyzers/checks/make.hpp"
#include "core/json.hpp"
#include "core/tokens.hpp"

namespace mxlens::analyzers::checks {

namespace json = boost::json;

// CHECKS.md, row for row.
const std::vector<catalog_entry>& catalog() {
  // A table: one row per check.
  // clang-format off
  static const std::vector<catalog_entry> table{
      {"smtp.ehlo", "transport", 0.5, {"RFC 5321 §4.1.1.1"}},
      {"smtp.helo_name", "transport", 1, {"RFC 5321 §4.1.1.1", "RFC 5321 §2.3.5"}},
      {"smtp.helo_dns", "transport", 0.5, {"RFC 5321 §4.1.4"}},
      {"smtp.early_talker", "transport", 0.5, {"RFC 5321 §4.3.1", "RFC 2920 §3.1"}},
      {"smtp.8bit", "transport", 1, {"RFC 6152", "RFC 6531"}},
      {"smtp.bare_lf", "transport", 1, {"RFC 5321 §2.3.8", "RFC 5321 §4.1.1.4"}},
      {"net.ipv6", "transport", 0, {"https://support.google.com/mail/answer/81126"}},
      {"tls.starttls", "tls", 3, {"RFC 3207", "https://support.google.com/mail/answer/81126"}},
      {"tls.version", "tls", 1.5, {"RFC 8996", "RFC 8446"}},
      {"tls.cipher", "tls", 1, {"RFC 9325 §4.2", "RFC 7465"}},
      {"tls.offer", "tls", 0.5, {"RFC 8996", "RFC 9325 §4.1"}},
      {"tls.handshake", "tls", 0.5, {"RFC 3207 §4.1"}},
      {"tls.fallback", "tls", 2, {"RFC 3207 §4.1", "https://support.google.com/mail/answer/81126"}},
      {"tls.sni", "tls", 0, {"RFC 6066 §3"}},
      {"tls.client_cert", "tls", 0, {"RFC 8446 §4.4.2"}},
      {"dns.ptr", "dns", 1.5, {"RFC 1912 §2.1", "https://support.google.com/mail/answer/81126"}},
      {"dns.fcrdns", "dns", 1.5, {"RFC 8601 §3", "https://support.google.com/mail/answer/81126"}},
      {"dns.ptr_generic", "dns", 0.5, {"RFC 8601 §3"}},
      {"dns.helo_ptr", "dns", 0.5, {"RFC 5321 §4.1.4"}},
      {"spf.record", "spf", 1, {"RFC 7208 §4.5", "RFC 7208 §4.6"}},
      {"spf.result", "spf", 2, {"RFC 7208 §2.6"}},
      {"spf.lookups", "spf", 1, {"RFC 7208 §4.6.4"}},
      {"spf.all", "spf", 0.5, {"RFC 7208 §5.1", "RFC 7208 §6.1"}},
      {"spf.helo", "spf", 0, {"RFC 7208 §2.3"}},
      {"spf.aligned", "spf", 0.5, {"RFC 7489 §3.1.2"}},
      {"spf.interop", "spf", 0, {"RFC 7208 §4"}},
      {"dkim.present", "dkim", 1, {"RFC 6376"}},
      {"dkim.valid", "dkim", 2, {"RFC 6376 §6"}},
      {"dkim.algorithm", "dkim", 1, {"RFC 8301 §3.1", "RFC 8463"}},
      {"dkim.key_size", "dkim", 1, {"RFC 8301 §3.2", "https://support.google.com/mail/answer/81126"}},
      {"dkim.coverage", "dkim", 0.5, {"RFC 6376 §5.4", "RFC 6376 §8.15", "RFC 8058 §4"}},
      {"dkim.body_length", "dkim", 0.5, {"RFC 6376 §8.2"}},
      {"dkim.timestamps", "dkim", 0.5, {"RFC 6376 §3.5"}},
      {"dkim.aligned", "dkim", 0.5, {"RFC 7489 §3.1.1"}},
      {"arc.chain", "dkim", 0.5, {"RFC 8617 §5.2"}},
      {"dmarc.record", "dmarc", 1.5, {"RFC 7489 §6.6.3", "https://support.google.com/a/answer/3726730"}},
      {"dmarc.policy", "dmarc", 0.5, {"RFC 7489 §6.3"}},
      {"dmarc.reporting", "dmarc", 0.25, {"RFC 7489 §7"}},
      {"dmarc.result", "dmarc", 2, {"RFC 7489 §4.2", "https://support.google.com/a/answer/3726730"}},
      {"dmarc.gmail_from", "dmarc", 2, {"https://support.google.com/mail/answer/81126"}},
      {"hdr.from", "headers", 2, {"RFC 5322 §3.6.2", "https://support.google.com/mail/answer/81126"}},
      {"hdr.date", "headers", 0.5, {"RFC 5322 §3.3", "RFC 5322 §3.6.1"}},
      {"hdr.message_id", "headers", 1, {"RFC 5322 §3.6.4", "https://support.google.com/mail/answer/81126"}},
      {"hdr.subject", "headers", 0.5, {"RFC 5322 §3.6.5"}},
      {"hdr.to", "headers", 0.25, {"RFC 5322 §3.6.3"}},
      {"hdr.duplicates", "headers", 1, {"RFC 5322 §3.6"}},
      {"hdr.syntax", "headers", 1, {"RFC 5322 §2.1.1", "RFC 5322 §2.2", "RFC 2047", "RFC 6532"}},
      {"hdr.mime", "headers", 0.5, {"RFC 2045", "RFC 2046 §5.1"}},
      {"hdr.reply_to", "headers", 0.25, {"RFC 5322 §3.6.2"}},
      {"hdr.return_path", "headers", 0, {"RFC 5321 §4.4"}},
      {"hdr.received", "headers", 0, {"RFC 5321 §4.4", "RFC 3848", "RFC 6531 §4.3"}},
      {"unsub.header", "unsubscribe", 0.5, {"RFC 2369 §3.2", "RFC 8058"}},
      {"unsub.one_click", "unsubscribe", 0.5, {"RFC 8058 §3.1", "https://support.google.com/mail/answer/81126"}},
      {"body.text_part", "content", 0.5, {"RFC 2046 §5.1.4"}},
      {"body.size", "content", 0.25, {"https://support.google.com/mail/answer/81126"}},
      {"body.images", "content", 0.5, {"https://support.google.com/mail/answer/81126"}},
      {"body.links", "content", 0.5, {"https://support.google.com/mail/answer/81126"}},
      {"body.charset", "content", 0.25, {"RFC 2046 §4.1.2"}},
      {"body.placeholders", "content", 0.5, {}},
      {"provider.gmail", "providers", 0, {"https://support.google.com/a/answer/3726730"}},
      {"provider.yahoo", "providers", 0, {"https://senders.yahooinc.com/best-practices/"}},
      {"provider.outlook", "providers", 0, {"https://support.microsoft.com/office/fix-ndr-error-550-5-7-515"}},
  };
  // clang-format on
  return table;
}

const catalog_entry& entry(std::string_view id) {
  for (const auto& e : catalog())
    if (e.id == id) return e;
  throw std::out_of_range("unknown check id " + std::string(id));
}

std::vector<check> evaluate(const inputs& in) {
  std::vector<check> all = transport_checks(in);
  append(all, auth_checks(in));
  append(all, message_checks(in));
  // Catalog order, whatever order the evaluators produced.
  std::vector<check> ordered;
  for (const auto& e : catalog()) {
    auto it = std::find_if(all.begin(), all.end(), [&](const check& c) { return c.id == e.id; });
    if (it != all.end()) ordered.push_back(std::move(*it));
  }
  return ordered;
}

namespace {
constexpr core::token_table<status, 6> status_tokens{{{{status::pass, "pass"},
                                                       {status::warn, "warn"},
                                                       {status::fail, "fail"},
                                                       {status::info, "info"},
                                                       {status::skip, "skip"},
                                                       {status::error, "error"}}},
                                                     "a check status"};
}  // namespace

std::string_view to_string(status s) { return status_tokens.token(s); }
status status_of(std::string_view token) { return status_tokens.value(token); }

void tag_invoke(json::value_from_tag, json::value& v, const check& c) {
  const auto& e = entry(c.id);
  json::array refs;
  for (auto r : e.refs) refs.emplace_back(r);
  v = json::object{{"id", c.id},
                   {"category", e.category},
                   {"status", to_string(c.status)},
                   {"summary", c.summary},
                   {"evidence", c.evidence},
                   {"fix", core::optional_json(c.fix)},
                   {"refs", std::move(refs)},
                   {"weight", e.weight}};
}

check tag_invoke(json::value_to_tag<check>, const json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  check c;
  c.id = text(o, "id");
  entry(c.id);  // an id of the catalog
  c.status = status_of(text(o, "status"));
  c.summary = text(o, "summary");
  c.evidence = member(o, "evidence");
  c.fix = optional_field<std::string>(o, "fix");
  return c;
}

core::score score(const std::vector<check>& checks) {
  core::score s;
  double cost = 0;
  bool judged = false;  // a check with a weight passed, warned or failed
  for (const auto& c : checks) {
    const double w = entry(c.id).weight;
    switch (c.status) {
      case status::pass: ++s.passed; break;
      case status::warn: cost += w / 2; break;
      case status::fail: cost += w; break;
      case status::error:
        // Not evaluated is not passed: a sender whose DNS does not answer must never score
        // above the same sender whose DNS answers with failures.
        cost += w;
        ++s.errors;
        ++s.total;
        continue;
      default: continue;
    }
    ++s.total;
    judged = judged || w > 0;
  }
  if (!judged) {
    s.unscored = s.errors > 0 ? "no scored check could be evaluated (" + std::to_string(s.errors) +
                                    " errors)"
                              : "no scored check applies";
    return s;
  }
  s.value = std::max(0.0, std::round((10.0 - cost) * 10.0) / 10.0);
  return s;
}

}  // namespace mxlens::analyzers::checks
