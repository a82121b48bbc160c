// spf, dkim and dmarc checks: they read the analyzers' results (auth) and the message headers.
#include <algorithm>

#include "analyzers/checks/make.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/dns/idn.hpp"
#include "analyzers/spf/record.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::checks {

namespace json = boost::json;
using core::auth_result;

namespace {

// The final "all" of an SPF record and whether it redirects.
struct spf_ending {
  std::string all;  // "-all" "~all" "?all" "+all" or ""
  bool redirect = false;
};
// Read with the evaluator's own parser (spf/record.hpp): the first `all` is the one evaluation
// stops at (RFC 7208 §5.1), and a redirect counts only without one (§6.1).
spf_ending ending(const std::string& record) {
  spf_ending e;
  const auto parsed = spf::parse_record(record);
  for (const auto& t : parsed.terms) {
    if (t.kind != spf::term_kind::all || !t.error.empty()) continue;
    e.all = std::string(1, t.qualifier) + "all";
    break;
  }
  e.redirect = parsed.redirect() != nullptr;
  return e;
}

std::vector<check> spf(const inputs& in) {
  std::vector<check> out;
  const auto& s = in.spf;
  const auto result = s.value;
  const auto& record = s.record;
  const std::string domain = s.domain.value_or("");
  // Texts name a domain in both forms (RFC 8616); evidence keeps the A-labels.
  const auto forms = dns::idn(domain);
  const std::string name = forms.shown();
  const auto records = s.records;
  const std::string& record_error = s.record_error;
  json::object ev{{"domain", domain},
                  {"record", record ? json::value(*record) : nullptr},
                  {"records", records}};

  if (result == auth_result::temperror && records == 0) {
    out.push_back(make("spf.record", status::error,
                       "The SPF record of " + name + " could not be looked up", ev));
  } else if (!record_error.empty()) {
    ev["error"] = record_error;
    out.push_back(make(
        "spf.record", status::fail, "The SPF record of " + name + " is unusable: " + record_error,
        ev, "Publish exactly one TXT record starting with v=spf1 and check its syntax."));
  } else if (!forms.valid()) {
    out.push_back(make("spf.record", status::fail,
                       "There is no valid domain to look up an SPF record for: " + s.problem, ev,
                       "Use a MAIL FROM domain in valid A-labels or U-labels (IDNA2008)."));
  } else if (!record) {
    out.push_back(
        make("spf.record", status::fail,
             domain.empty() ? "There is no domain to look up an SPF record for"
                            : name + " publishes no SPF record",
             ev, "Publish a TXT record such as \"v=spf1 ip4:<your sending addresses> -all\"."));
  } else {
    out.push_back(make("spf.record", status::pass, name + " publishes one valid SPF record", ev));
  }

  json::object rev{{"result", core::to_string(result)}, {"domain", domain}};
  if (!s.problem.empty()) rev["problem"] = s.problem;
  if (s.explanation) rev["explanation"] = *s.explanation;
  const std::string& ip = in.session.connection.client_ip;
  const std::string result_name(core::to_string(result));
  if (result == auth_result::pass) {
    out.push_back(make("spf.result", status::pass, "SPF pass: " + name + " allows " + ip, rev));
  } else if (result == auth_result::temperror) {
    out.push_back(
        make("spf.result", status::error, "SPF could not be evaluated (temporary DNS error)", rev));
  } else if (result == auth_result::fail || result == auth_result::permerror) {
    out.push_back(make("spf.result", status::fail,
                       "SPF " + result_name + " for " + name + " from " + ip, rev,
                       result == auth_result::fail
                           ? "Add the sending address " + ip + " to the SPF record of " + name + "."
                           : "Fix the SPF record: " + s.problem + "."));
  } else {
    out.push_back(
        make("spf.result", status::warn, "SPF " + result_name + " for " + name + " from " + ip, rev,
             "Authorize " + ip + " in the SPF record of " + name + " and end it in -all or ~all."));
  }

  const auto lookups = s.lookups, voids = s.void_lookups;
  json::object lev{{"lookups", lookups}, {"void_lookups", voids}, {"limit", 10}, {"void_limit", 2}};
  if (!record) {
    out.push_back(make("spf.lookups", status::skip, "No SPF record was evaluated", lev));
  } else if (lookups > 10 || voids > 2) {
    out.push_back(make("spf.lookups", status::fail,
                       "The evaluation needed " + std::to_string(lookups) +
                           " DNS-querying terms and " + std::to_string(voids) +
                           " void lookups: permerror",
                       lev,
                       "Flatten includes (replace them with ip4:/ip6:) and remove terms that name "
                       "nonexistent hosts, to stay within 10 lookups and 2 void lookups."));
  } else if (lookups >= 8) {
    out.push_back(make("spf.lookups", status::warn,
                       std::to_string(lookups) + " of 10 DNS-querying terms used", lev,
                       "Flatten some includes: a provider adding one include breaks SPF for you."));
  } else {
    out.push_back(make("spf.lookups", status::pass,
                       std::to_string(lookups) + " of 10 DNS-querying terms used", lev));
  }

  if (!record) {
    out.push_back(make("spf.all", status::skip, "No SPF record"));
  } else {
    auto e = ending(*record);
    json::object aev{{"record", *record},
                     {"all", e.all.empty() ? json::value(nullptr) : json::value(e.all)},
                     {"redirect", e.redirect}};
    if (e.all == "-all" || e.all == "~all") {
      out.push_back(make("spf.all", status::pass, "The record ends in " + e.all, aev));
    } else if (e.all.empty() && e.redirect) {
      out.push_back(make("spf.all", status::pass, "The record redirects to another policy", aev));
    } else if (e.all == "+all") {
      out.push_back(make("spf.all", status::fail,
                         "The record ends in +all: anyone may send as " + name, aev,
                         "End the record in -all (or ~all while testing)."));
    } else {
      out.push_back(make(
          "spf.all", status::warn,
          e.all.empty() ? "The record has no all and no redirect" : "The record ends in " + e.all,
          aev, "End the record in -all (or ~all while testing)."));
    }
  }

  const auto& helo = in.spf_helo;
  if (!helo) {
    out.push_back(make("spf.helo", status::info, "No HELO identity was checked"));
  } else {
    const std::string helo_domain = helo->domain.value_or("");
    const std::string helo_result(core::to_string(helo->value));
    out.push_back(make("spf.helo", status::info,
                       "HELO identity " + dns::idn(helo_domain).shown() + ": SPF " + helo_result,
                       json::object{{"result", helo_result}, {"domain", helo_domain}}));
  }

  const std::string from = in.dmarc.from_domain.value_or("");
  const std::string from_name = dns::idn(from).shown();
  json::object alev{{"spf_domain", domain}, {"from_domain", from}};
  if (result != auth_result::pass) {
    out.push_back(make("spf.aligned", status::skip,
                       "SPF did not pass, so no domain was authenticated by it", alev));
  } else if (from.empty()) {
    out.push_back(make("spf.aligned", status::skip, "No From domain to align with", alev));
  } else if (dmarc::aligned(from, domain, 'r')) {
    out.push_back(make("spf.aligned", status::pass,
                       "The SPF domain " + name + " aligns with From " + from_name, alev));
  } else {
    out.push_back(
        make("spf.aligned", status::warn,
             "The SPF domain " + name + " does not align with From " + from_name, alev,
             "Use a MAIL FROM (bounce) address in the From domain or a subdomain of it."));
  }

  // Receivers on libspf2 meet its differences from RFC 7208 (docs/libraries.md §2).
  json::object iev{{"result", result_name},
                   {"libspf2", s.libspf2 ? json::value(core::to_string(*s.libspf2)) : nullptr}};
  if (records == 0) {
    out.push_back(make("spf.interop", status::info, "No SPF record to compare", iev));
  } else if (s.libspf2) {
    out.push_back(make("spf.interop", status::info,
                       "libspf2, which several receiving MTAs use, computes " +
                           std::string(core::to_string(*s.libspf2)) + " for this record, where " +
                           "RFC 7208 gives " + result_name,
                       iev));
  } else {
    out.push_back(
        make("spf.interop", status::info, "libspf2 computes the same result, " + result_name, iev));
  }
  return out;
}

std::vector<check> dkim(const inputs& in) {
  std::vector<check> out;
  const auto& sigs = in.dkim;
  const std::string from = in.dmarc.from_domain.value_or("");
  const std::string from_name = dns::idn(from).shown();
  json::array summary;
  for (const auto& s : sigs) {
    summary.push_back(json::object{{"d", s.domain},
                                   {"s", s.selector},
                                   {"a", s.algorithm},
                                   {"result", core::to_string(s.result)},
                                   {"reason", core::optional_json(s.reason)}});
  }
  if (sigs.empty()) {
    out.push_back(
        make("dkim.present", status::fail, "The message carries no DKIM-Signature", nullptr,
             "Sign outgoing mail with DKIM (rsa-sha256 with a 2048-bit key, or ed25519-sha256) "
             "using d= of the From domain."));
    for (auto id : {"dkim.valid", "dkim.algorithm", "dkim.key_size", "dkim.coverage",
                    "dkim.body_length", "dkim.timestamps", "dkim.aligned"})
      out.push_back(make(id, status::skip, "No DKIM signature"));
    return out;
  }
  out.push_back(make("dkim.present", status::pass,
                     std::to_string(sigs.size()) + " DKIM signature(s)", summary));

  // The signature the rest is judged by: a passing aligned one, else a passing one, else the first.
  const dkim::signature* best = nullptr;
  int passing = 0, temporary = 0;
  for (const auto& s : sigs) {
    const bool pass = s.result == auth_result::pass;
    if (s.result == auth_result::temperror) ++temporary;
    if (pass) ++passing;
    if (!best ||
        (pass && (best->result != auth_result::pass || (!dmarc::aligned(from, best->domain, 'r') &&
                                                        dmarc::aligned(from, s.domain, 'r')))))
      best = &s;
  }
  if (passing > 0) {
    out.push_back(make("dkim.valid", status::pass,
                       "DKIM pass for d=" + dns::idn(best->domain).shown(), summary));
  } else if (temporary > 0) {
    out.push_back(make("dkim.valid", status::error,
                       "The DKIM key could not be fetched (temporary DNS error)", summary));
  } else {
    out.push_back(
        make("dkim.valid", status::fail, "No DKIM signature verifies: " + best->reason.value_or(""),
             summary,
             "Check that the selector's key record matches the signing key and that nothing "
             "rewrites the message after signing (footers, line wrapping, header changes)."));
  }

  std::vector<std::string> sha1;
  for (const auto& s : sigs)
    if (core::lowercase(s.algorithm) == "rsa-sha1")
      sha1.push_back("d=" + s.domain + " s=" + s.selector);
  out.push_back(
      sha1.empty()
          ? make("dkim.algorithm", status::pass,
                 "Every signature uses rsa-sha256 or ed25519-sha256", summary)
          : make("dkim.algorithm", status::fail,
                 "rsa-sha1 signature: " + sha1.front() + " (RFC 8301)",
                 json::object{{"rsa_sha1", core::string_array(sha1)}},
                 "Sign with rsa-sha256 (or ed25519-sha256); rsa-sha1 is not a valid algorithm."));

  std::optional<std::int64_t> smallest_rsa;
  bool any_key = false;
  json::array keys;
  for (const auto& s : sigs) {
    const auto& type = s.key_type;
    if (!type) continue;
    any_key = true;
    const std::int64_t bits = s.key_bits.value_or(-1);
    keys.push_back(
        json::object{{"d", s.domain}, {"s", s.selector}, {"type", *type}, {"bits", bits}});
    if (*type == "rsa" && bits >= 0)
      smallest_rsa = smallest_rsa ? std::min(*smallest_rsa, bits) : bits;
  }
  if (!any_key) {
    out.push_back(make("dkim.key_size", status::skip, "No DKIM key was retrieved", keys));
  } else if (smallest_rsa && *smallest_rsa < 1024) {
    out.push_back(make("dkim.key_size", status::fail,
                       "A " + std::to_string(*smallest_rsa) + "-bit RSA key", keys,
                       "Publish a 2048-bit RSA key (or ed25519) and sign with it."));
  } else if (smallest_rsa && *smallest_rsa < 2048) {
    out.push_back(
        make("dkim.key_size", status::warn, "A " + std::to_string(*smallest_rsa) + "-bit RSA key",
             keys, "Move to a 2048-bit RSA key; 1024 bits is the minimum the providers accept."));
  } else {
    out.push_back(
        make("dkim.key_size", status::pass, "RSA keys of 2048 bits or more, or ed25519", keys));
  }

  // Coverage of the signature judged.
  std::vector<std::string> signed_names;
  for (const auto& h : best->signed_headers) signed_names.push_back(core::lowercase(h));
  auto signed_count = [&](const char* n) {
    return static_cast<int>(std::count(signed_names.begin(), signed_names.end(), std::string(n)));
  };
  std::vector<std::string> unsigned_present;
  if (signed_count("from") == 0) unsigned_present.push_back("From");
  for (const char* name :
       {"Subject", "Date", "To", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"}) {
    if (message::count(in.content.fields, name) > 0 &&
        signed_count(core::lowercase(name).c_str()) == 0)
      unsigned_present.push_back(name);
  }
  const bool oversigned = signed_count("from") > message::count(in.content.fields, "From");
  json::object cev{{"d", best->domain},
                   {"signed_headers", core::string_array(best->signed_headers)},
                   {"unsigned", core::string_array(unsigned_present)},
                   {"from_oversigned", oversigned}};
  if (!unsigned_present.empty()) {
    out.push_back(make("dkim.coverage", status::warn,
                       "Present but not signed: " + unsigned_present.front() +
                           (unsigned_present.size() > 1 ? " and more" : ""),
                       cev,
                       "Sign From, Subject, Date, To, Message-ID and the List-Unsubscribe headers; "
                       "list From twice in h= so no second From can be added."));
  } else if (!oversigned) {
    out.push_back(
        make("dkim.coverage", status::warn, "From is signed but not over-signed", cev,
             "List From one more time in h= than it occurs, so a second From cannot be added."));
  } else {
    out.push_back(make("dkim.coverage", status::pass,
                       "The important headers are signed and From is over-signed", cev));
  }

  const auto& l = best->body_length;
  const auto body = static_cast<std::int64_t>(in.content.body_size);
  if (!l) {
    out.push_back(make("dkim.body_length", status::pass, "No l= tag: the whole body is signed",
                       json::object{{"l", nullptr}, {"body_octets", body}}));
  } else if (*l < body) {
    out.push_back(make(
        "dkim.body_length", status::fail,
        "l=" + std::to_string(*l) + " signs only part of a " + std::to_string(body) + "-octet body",
        json::object{{"l", *l}, {"body_octets", body}},
        "Drop l=: with it anyone can append content to the signed message."));
  } else {
    out.push_back(make("dkim.body_length", status::warn,
                       "l= covers the body, but content can still be appended",
                       json::object{{"l", *l}, {"body_octets", body}}, "Drop the l= tag."));
  }

  const auto now = in.session.received_at / 1000;
  std::vector<std::string> bad_times;
  for (const auto& s : sigs) {
    const auto t = s.timestamp.value_or(-1), x = s.expiration.value_or(-1);
    if (t > now + 300) bad_times.push_back("t=" + std::to_string(t) + " is in the future");
    if (x >= 0 && x < now) bad_times.push_back("x=" + std::to_string(x) + " has passed");
  }
  json::object tev{{"received", now}, {"problems", core::string_array(bad_times)}};
  out.push_back(
      bad_times.empty()
          ? make("dkim.timestamps", status::pass, "Signature times are consistent with the arrival",
                 tev)
          : make("dkim.timestamps", status::fail, bad_times.front(), tev,
                 "Check the signer's clock, and give x= enough time for delivery retries."));

  json::object aev{{"from_domain", from}, {"d", best->domain}};
  if (passing == 0) {
    out.push_back(make("dkim.aligned", status::skip, "No passing signature", aev));
  } else if (!from.empty() && dmarc::aligned(from, best->domain, 'r')) {
    out.push_back(make("dkim.aligned", status::pass,
                       "d=" + dns::idn(best->domain).shown() + " aligns with From " + from_name,
                       aev));
  } else {
    out.push_back(
        make("dkim.aligned", status::warn,
             "d=" + dns::idn(best->domain).shown() + " does not align with From " + from_name, aev,
             "Sign with d= set to the From domain (or its organizational domain)."));
  }
  return out;
}

std::vector<check> dmarc_checks(const inputs& in) {
  std::vector<check> out;
  const auto& d = in.dmarc;
  const auto result = d.value;
  const std::string from = d.from_domain.value_or("");
  const auto from_forms = dns::idn(from);
  const std::string from_name = from_forms.shown();
  const auto& record = d.rec;
  json::object ev{{"from_domain", from},
                  {"org_domain", core::optional_json(d.org_domain)},
                  {"record", record ? json::value(record->text) : nullptr},
                  {"record_domain", core::optional_json(d.record_domain)}};
  if (!d.problem.empty()) ev["problem"] = d.problem;
  const char* publish =
      "Publish a TXT record at _dmarc.<your domain>, e.g. \"v=DMARC1; p=quarantine; "
      "rua=mailto:dmarc-reports@<your domain>\".";
  if (result == auth_result::temperror) {
    out.push_back(
        make("dmarc.record", status::error, "The DMARC record could not be looked up", ev));
  } else if (!from_forms.valid()) {
    out.push_back(make("dmarc.record", status::fail,
                       "No DMARC record can be looked up: " + d.problem, ev,
                       "Use a From domain in valid A-labels or U-labels (IDNA2008)."));
  } else if (result == auth_result::permerror && !from.empty()) {
    out.push_back(make("dmarc.record", status::fail, "The DMARC record is unusable: " + d.problem,
                       ev, "Keep exactly one record starting with v=DMARC1 and a valid p= tag."));
  } else if (!record) {
    out.push_back(make("dmarc.record", status::fail,
                       from.empty() ? "No From domain to look up a DMARC record for"
                                    : "Neither " + from_name +
                                          " nor its organizational domain has a DMARC record" +
                                          (d.problem.empty() ? "" : ": " + d.problem),
                       ev, publish));
  } else {
    // Values the record gets wrong are ignored (§6.3): said, as they may change the policy.
    std::string ignored;
    for (const auto& w : record->warnings) ignored += "; " + w;
    ev["warnings"] = core::string_array(record->warnings);
    out.push_back(make("dmarc.record", status::pass,
                       "DMARC record at _dmarc." + d.record_domain.value_or("") + ignored, ev));
  }

  if (!record) {
    out.push_back(make("dmarc.policy", status::skip, "No DMARC record"));
    out.push_back(make("dmarc.reporting", status::skip, "No DMARC record"));
  } else {
    const std::string policy = d.applied_policy.value_or("");
    const auto pct = record->pct;
    json::object pev{{"policy", record->policy}, {"applied_policy", policy}, {"pct", pct}};
    if ((policy == "quarantine" || policy == "reject") && pct == 100) {
      out.push_back(make("dmarc.policy", status::pass, "p=" + policy + " at pct=100", pev));
    } else {
      out.push_back(make(
          "dmarc.policy", status::warn,
          "p=" + policy + (pct < 100 ? " at pct=" + std::to_string(pct) : std::string()), pev,
          "Once reports show your mail aligned, move to p=quarantine, then p=reject, at pct=100."));
    }
    const auto& rua = record->rua;
    out.push_back(rua.empty() ? make("dmarc.reporting", status::warn, "No rua= reporting address",
                                     json::object{{"rua", json::array{}}},
                                     "Add rua=mailto:<address> to receive aggregate reports.")
                              : make("dmarc.reporting", status::pass,
                                     "Aggregate reports go to " + rua.front(),
                                     json::object{{"rua", core::string_array(rua)}}));
  }

  json::object rev{{"result", core::to_string(result)},
                   {"spf_aligned", d.spf_aligned},
                   {"dkim_aligned", d.dkim_aligned},
                   {"from_domain", from}};
  if (result == auth_result::pass) {
    out.push_back(
        make("dmarc.result", status::pass,
             std::string("DMARC pass through aligned ") + (d.dkim_aligned ? "DKIM" : "SPF"), rev));
  } else if (result == auth_result::fail) {
    out.push_back(
        make("dmarc.result", status::fail,
             "DMARC fail: neither SPF nor DKIM passed aligned with " + from_name, rev,
             "Make SPF pass for a MAIL FROM in the From domain, or sign with DKIM d= of the "
             "From domain (Gmail: 550 5.7.26)."));
  } else if (result == auth_result::none) {
    out.push_back(make("dmarc.result", status::skip, "No DMARC policy applies", rev));
  } else {
    out.push_back(
        make("dmarc.result", status::error,
             "DMARC could not be evaluated (" + std::string(core::to_string(result)) + ")", rev));
  }

  // Gmail's own domains may only be used by Google's servers.
  const std::string f = core::lowercase(from);
  if (f != "gmail.com" && f != "googlemail.com") {
    out.push_back(make("dmarc.gmail_from", status::skip, "The From domain is not a Gmail domain"));
  } else {
    bool from_google = result == auth_result::pass;
    out.push_back(
        from_google
            ? make("dmarc.gmail_from", status::pass, "From " + f + " and authenticated by Google",
                   rev)
            : make("dmarc.gmail_from", status::fail, "From " + f + " sent from outside Google", rev,
                   "Do not put a Gmail address in From: send from your own domain and use "
                   "Reply-To for the Gmail address."));
  }
  return out;
}

// arc.chain (RFC 8617 §5.2): no ARC sets is a skip, a validating chain a pass, a broken one a
// fail naming the set and why; a key that could not be fetched for now is an error, not a fail.
check arc_check(const inputs& in) {
  const auto& a = in.arc;
  auto ev = json::value_from(a);
  if (a.cv == "none") return make("arc.chain", status::skip, "No ARC sets", std::move(ev));
  const auto sets = std::to_string(a.instances) + (a.instances == 1 ? " set" : " sets");
  if (a.cv == "pass") {
    std::string who;
    for (const auto& i : a.chain) who += (who.empty() ? "" : ", ") + i.seal_domain;
    return make("arc.chain", status::pass, "ARC chain of " + sets + " validates (" + who + ")",
                std::move(ev));
  }
  const std::string where =
      a.failed_instance ? " at i=" + std::to_string(*a.failed_instance) : std::string();
  const std::string summary = "ARC chain of " + sets + " is broken" + where + ": " +
                              a.reason.value_or("the chain does not validate");
  if (a.temporary) return make("arc.chain", status::error, summary, std::move(ev));
  return make("arc.chain", status::fail, summary, std::move(ev),
              "The intermediary that added the failing set must seal only what it received "
              "and change nothing after sealing; a receiver ignores a broken chain "
              "(RFC 8617 §5.2), so a forwarded message falls back to its own SPF, DKIM and "
              "DMARC.");
}

}  // namespace

std::vector<check> auth_checks(const inputs& in) {
  auto out = spf(in);
  append(out, dkim(in));
  out.push_back(arc_check(in));
  append(out, dmarc_checks(in));
  return out;
}

}  // namespace mxlens::analyzers::checks
