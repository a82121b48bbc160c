// spf, dkim and dmarc checks: they read the analyzers' results (auth) and the message headers.
#include <algorithm>
#include <sstream>

#include "analyzers/checks/json_view.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::checks {

namespace json = boost::json;

namespace {

// The final "all" of an SPF record and whether it redirects.
struct spf_ending {
  std::string all;  // "-all" "~all" "?all" "+all" or ""
  bool redirect = false;
};
spf_ending ending(const std::string& record) {
  spf_ending e;
  std::istringstream terms(core::lowercase(record));
  std::string term;
  while (terms >> term) {
    if (term == "all" || term == "+all") e.all = "+all";
    else if (term == "-all" || term == "~all" || term == "?all") e.all = term;
    else if (term.rfind("redirect=", 0) == 0) e.redirect = true;
  }
  return e;
}

std::vector<check> spf(const inputs& in) {
  std::vector<check> out;
  const auto& s = obj(in.auth, "spf");
  const std::string result = str(s, "result");
  const auto record = opt_str(s, "record");
  const std::string domain = str(s, "domain");
  const auto records = num(s, "records");
  const std::string record_error = str(s, "record_error");
  json::object ev{{"domain", domain},
                  {"record", record ? json::value(*record) : nullptr},
                  {"records", records}};

  if (result == "temperror" && records == 0) {
    out.push_back(
        make("spf.record", "error", "The SPF record of " + domain + " could not be looked up", ev));
  } else if (!record_error.empty()) {
    ev["error"] = record_error;
    out.push_back(
        make("spf.record", "fail", "The SPF record of " + domain + " is unusable: " + record_error,
             ev, "Publish exactly one TXT record starting with v=spf1 and check its syntax."));
  } else if (!record) {
    out.push_back(
        make("spf.record", "fail",
             domain.empty() ? "There is no domain to look up an SPF record for"
                            : domain + " publishes no SPF record",
             ev, "Publish a TXT record such as \"v=spf1 ip4:<your sending addresses> -all\"."));
  } else {
    out.push_back(make("spf.record", "pass", domain + " publishes one valid SPF record", ev));
  }

  json::object rev{{"result", result}, {"domain", domain}};
  if (auto p = opt_str(s, "problem")) rev["problem"] = *p;
  if (auto x = opt_str(s, "explanation")) rev["explanation"] = *x;
  const std::string ip = str(in.connection, "client_ip");
  if (result == "pass") {
    out.push_back(make("spf.result", "pass", "SPF pass: " + domain + " allows " + ip, rev));
  } else if (result == "temperror") {
    out.push_back(
        make("spf.result", "error", "SPF could not be evaluated (temporary DNS error)", rev));
  } else if (result == "fail" || result == "permerror") {
    out.push_back(make(
        "spf.result", "fail", "SPF " + result + " for " + domain + " from " + ip, rev,
        result == "fail" ? "Add the sending address " + ip + " to the SPF record of " + domain + "."
                         : "Fix the SPF record: " + str(s, "problem") + "."));
  } else {
    out.push_back(make(
        "spf.result", "warn", "SPF " + result + " for " + domain + " from " + ip, rev,
        "Authorize " + ip + " in the SPF record of " + domain + " and end it in -all or ~all."));
  }

  const auto lookups = num(s, "lookups"), voids = num(s, "void_lookups");
  json::object lev{{"lookups", lookups}, {"void_lookups", voids}, {"limit", 10}, {"void_limit", 2}};
  if (!record) {
    out.push_back(make("spf.lookups", "skip", "No SPF record was evaluated", lev));
  } else if (lookups > 10 || voids > 2) {
    out.push_back(make("spf.lookups", "fail",
                       "The evaluation needed " + std::to_string(lookups) +
                           " DNS-querying terms and " + std::to_string(voids) +
                           " void lookups: permerror",
                       lev,
                       "Flatten includes (replace them with ip4:/ip6:) and remove terms that name "
                       "nonexistent hosts, to stay within 10 lookups and 2 void lookups."));
  } else if (lookups >= 8) {
    out.push_back(make("spf.lookups", "warn",
                       std::to_string(lookups) + " of 10 DNS-querying terms used", lev,
                       "Flatten some includes: a provider adding one include breaks SPF for you."));
  } else {
    out.push_back(make("spf.lookups", "pass",
                       std::to_string(lookups) + " of 10 DNS-querying terms used", lev));
  }

  if (!record) {
    out.push_back(make("spf.all", "skip", "No SPF record"));
  } else {
    auto e = ending(*record);
    json::object aev{{"record", *record},
                     {"all", e.all.empty() ? json::value(nullptr) : json::value(e.all)},
                     {"redirect", e.redirect}};
    if (e.all == "-all" || e.all == "~all") {
      out.push_back(make("spf.all", "pass", "The record ends in " + e.all, aev));
    } else if (e.all.empty() && e.redirect) {
      out.push_back(make("spf.all", "pass", "The record redirects to another policy", aev));
    } else if (e.all == "+all") {
      out.push_back(make("spf.all", "fail", "The record ends in +all: anyone may send as " + domain,
                         aev, "End the record in -all (or ~all while testing)."));
    } else {
      out.push_back(make(
          "spf.all", "warn",
          e.all.empty() ? "The record has no all and no redirect" : "The record ends in " + e.all,
          aev, "End the record in -all (or ~all while testing)."));
    }
  }

  const auto& helo = obj(in.auth, "spf_helo");
  json::object hev{{"result", str(helo, "result")}, {"domain", str(helo, "domain")}};
  out.push_back(make("spf.helo", "info",
                     helo.empty()
                         ? "No HELO identity was checked"
                         : "HELO identity " + str(helo, "domain") + ": SPF " + str(helo, "result"),
                     helo.empty() ? json::value(nullptr) : json::value(hev)));

  const auto& dm = obj(in.auth, "dmarc");
  const std::string from = str(dm, "from_domain");
  json::object alev{{"spf_domain", domain}, {"from_domain", from}};
  if (result != "pass") {
    out.push_back(make("spf.aligned", "skip",
                       "SPF did not pass, so no domain was authenticated by it", alev));
  } else if (from.empty()) {
    out.push_back(make("spf.aligned", "skip", "No From domain to align with", alev));
  } else if (dmarc::aligned(from, domain, 'r')) {
    out.push_back(make("spf.aligned", "pass",
                       "The SPF domain " + domain + " aligns with From " + from, alev));
  } else {
    out.push_back(make(
        "spf.aligned", "warn", "The SPF domain " + domain + " does not align with From " + from,
        alev, "Use a MAIL FROM (bounce) address in the From domain or a subdomain of it."));
  }
  return out;
}

std::vector<check> dkim(const inputs& in) {
  std::vector<check> out;
  const auto& sigs = arr(in.auth, "dkim");
  const std::string from = str(obj(in.auth, "dmarc"), "from_domain");
  json::array summary;
  for (const auto& v : sigs) {
    if (!v.is_object()) continue;
    const auto& s = v.as_object();
    summary.push_back(json::object{{"d", str(s, "domain")},
                                   {"s", str(s, "selector")},
                                   {"a", str(s, "algorithm")},
                                   {"result", str(s, "result")},
                                   {"reason", s.contains("reason") ? s.at("reason") : nullptr}});
  }
  if (sigs.empty()) {
    out.push_back(
        make("dkim.present", "fail", "The message carries no DKIM-Signature", nullptr,
             "Sign outgoing mail with DKIM (rsa-sha256 with a 2048-bit key, or ed25519-sha256) "
             "using d= of the From domain."));
    for (auto id : {"dkim.valid", "dkim.algorithm", "dkim.key_size", "dkim.coverage",
                    "dkim.body_length", "dkim.timestamps", "dkim.aligned"})
      out.push_back(make(id, "skip", "No DKIM signature"));
    return out;
  }
  out.push_back(
      make("dkim.present", "pass", std::to_string(sigs.size()) + " DKIM signature(s)", summary));

  // The signature the rest is judged by: a passing aligned one, else a passing one, else the first.
  const json::object* best = nullptr;
  int passing = 0, temporary = 0;
  for (const auto& v : sigs) {
    const auto& s = v.as_object();
    const bool pass = str(s, "result") == "pass";
    if (str(s, "result") == "temperror") ++temporary;
    if (pass) ++passing;
    if (!best || (pass && (str(*best, "result") != "pass" ||
                           (!dmarc::aligned(from, str(*best, "domain"), 'r') &&
                            dmarc::aligned(from, str(s, "domain"), 'r')))))
      best = &s;
  }
  if (passing > 0) {
    out.push_back(make("dkim.valid", "pass", "DKIM pass for d=" + str(*best, "domain"), summary));
  } else if (temporary > 0) {
    out.push_back(make("dkim.valid", "error",
                       "The DKIM key could not be fetched (temporary DNS error)", summary));
  } else {
    out.push_back(
        make("dkim.valid", "fail", "No DKIM signature verifies: " + str(*best, "reason"), summary,
             "Check that the selector's key record matches the signing key and that nothing "
             "rewrites the message after signing (footers, line wrapping, header changes)."));
  }

  std::vector<std::string> sha1;
  for (const auto& v : sigs)
    if (core::lowercase(str(v.as_object(), "algorithm")) == "rsa-sha1")
      sha1.push_back("d=" + str(v.as_object(), "domain") + " s=" + str(v.as_object(), "selector"));
  out.push_back(
      sha1.empty()
          ? make("dkim.algorithm", "pass", "Every signature uses rsa-sha256 or ed25519-sha256",
                 summary)
          : make("dkim.algorithm", "fail", "rsa-sha1 signature: " + sha1.front() + " (RFC 8301)",
                 json::object{{"rsa_sha1", core::string_array(sha1)}},
                 "Sign with rsa-sha256 (or ed25519-sha256); rsa-sha1 is not a valid algorithm."));

  std::optional<std::int64_t> smallest_rsa;
  bool any_key = false;
  json::array keys;
  for (const auto& v : sigs) {
    const auto& s = v.as_object();
    auto type = opt_str(s, "key_type");
    if (!type) continue;
    any_key = true;
    auto bits = num(s, "key_bits", -1);
    keys.push_back(json::object{
        {"d", str(s, "domain")}, {"s", str(s, "selector")}, {"type", *type}, {"bits", bits}});
    if (*type == "rsa" && bits >= 0)
      smallest_rsa = smallest_rsa ? std::min(*smallest_rsa, bits) : bits;
  }
  if (!any_key) {
    out.push_back(make("dkim.key_size", "skip", "No DKIM key was retrieved", keys));
  } else if (smallest_rsa && *smallest_rsa < 1024) {
    out.push_back(make("dkim.key_size", "fail",
                       "A " + std::to_string(*smallest_rsa) + "-bit RSA key", keys,
                       "Publish a 2048-bit RSA key (or ed25519) and sign with it."));
  } else if (smallest_rsa && *smallest_rsa < 2048) {
    out.push_back(
        make("dkim.key_size", "warn", "A " + std::to_string(*smallest_rsa) + "-bit RSA key", keys,
             "Move to a 2048-bit RSA key; 1024 bits is the minimum the providers accept."));
  } else {
    out.push_back(make("dkim.key_size", "pass", "RSA keys of 2048 bits or more, or ed25519", keys));
  }

  // Coverage of the signature judged.
  std::vector<std::string> signed_names;
  for (const auto& h : strings(*best, "signed_headers")) signed_names.push_back(core::lowercase(h));
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
  json::object cev{{"d", str(*best, "domain")},
                   {"signed_headers", arr(*best, "signed_headers")},
                   {"unsigned", core::string_array(unsigned_present)},
                   {"from_oversigned", oversigned}};
  if (!unsigned_present.empty()) {
    out.push_back(make("dkim.coverage", "warn",
                       "Present but not signed: " + unsigned_present.front() +
                           (unsigned_present.size() > 1 ? " and more" : ""),
                       cev,
                       "Sign From, Subject, Date, To, Message-ID and the List-Unsubscribe headers; "
                       "list From twice in h= so no second From can be added."));
  } else if (!oversigned) {
    out.push_back(
        make("dkim.coverage", "warn", "From is signed but not over-signed", cev,
             "List From one more time in h= than it occurs, so a second From cannot be added."));
  } else {
    out.push_back(make("dkim.coverage", "pass",
                       "The important headers are signed and From is over-signed", cev));
  }

  auto l = field(*best, "body_length");
  const auto body = static_cast<std::int64_t>(in.content.body_size);
  if (!l || !l->is_int64()) {
    out.push_back(make("dkim.body_length", "pass", "No l= tag: the whole body is signed",
                       json::object{{"l", nullptr}, {"body_octets", body}}));
  } else if (l->as_int64() < body) {
    out.push_back(make("dkim.body_length", "fail",
                       "l=" + std::to_string(l->as_int64()) + " signs only part of a " +
                           std::to_string(body) + "-octet body",
                       json::object{{"l", *l}, {"body_octets", body}},
                       "Drop l=: with it anyone can append content to the signed message."));
  } else {
    out.push_back(make("dkim.body_length", "warn",
                       "l= covers the body, but content can still be appended",
                       json::object{{"l", *l}, {"body_octets", body}}, "Drop the l= tag."));
  }

  const auto now = in.received_at / 1000;
  std::vector<std::string> bad_times;
  for (const auto& v : sigs) {
    const auto& s = v.as_object();
    auto t = num(s, "timestamp", -1), x = num(s, "expiration", -1);
    if (t > now + 300) bad_times.push_back("t=" + std::to_string(t) + " is in the future");
    if (x >= 0 && x < now) bad_times.push_back("x=" + std::to_string(x) + " has passed");
  }
  json::object tev{{"received", now}, {"problems", core::string_array(bad_times)}};
  out.push_back(
      bad_times.empty()
          ? make("dkim.timestamps", "pass", "Signature times are consistent with the arrival", tev)
          : make("dkim.timestamps", "fail", bad_times.front(), tev,
                 "Check the signer's clock, and give x= enough time for delivery retries."));

  json::object aev{{"from_domain", from}, {"d", str(*best, "domain")}};
  if (passing == 0) {
    out.push_back(make("dkim.aligned", "skip", "No passing signature", aev));
  } else if (!from.empty() && dmarc::aligned(from, str(*best, "domain"), 'r')) {
    out.push_back(make("dkim.aligned", "pass",
                       "d=" + str(*best, "domain") + " aligns with From " + from, aev));
  } else {
    out.push_back(make("dkim.aligned", "warn",
                       "d=" + str(*best, "domain") + " does not align with From " + from, aev,
                       "Sign with d= set to the From domain (or its organizational domain)."));
  }
  return out;
}

std::vector<check> dmarc_checks(const inputs& in) {
  std::vector<check> out;
  const auto& d = obj(in.auth, "dmarc");
  const std::string result = str(d, "result");
  const std::string from = str(d, "from_domain");
  const auto record = opt_str(d, "record");
  json::object ev{{"from_domain", from},
                  {"org_domain", d.contains("org_domain") ? d.at("org_domain") : nullptr},
                  {"record", record ? json::value(*record) : nullptr},
                  {"record_domain", d.contains("record_domain") ? d.at("record_domain") : nullptr}};
  if (auto p = opt_str(d, "problem")) ev["problem"] = *p;
  const char* publish =
      "Publish a TXT record at _dmarc.<your domain>, e.g. \"v=DMARC1; p=quarantine; "
      "rua=mailto:dmarc-reports@<your domain>\".";
  if (result == "temperror") {
    out.push_back(make("dmarc.record", "error", "The DMARC record could not be looked up", ev));
  } else if (result == "permerror" && !from.empty()) {
    out.push_back(make("dmarc.record", "fail", "The DMARC record is unusable: " + str(d, "problem"),
                       ev, "Keep exactly one record starting with v=DMARC1 and a valid p= tag."));
  } else if (!record) {
    out.push_back(
        make("dmarc.record", "fail",
             from.empty() ? "No From domain to look up a DMARC record for"
                          : "Neither " + from + " nor its organizational domain has a DMARC record",
             ev, publish));
  } else {
    out.push_back(
        make("dmarc.record", "pass", "DMARC record at _dmarc." + str(d, "record_domain"), ev));
  }

  if (!record) {
    out.push_back(make("dmarc.policy", "skip", "No DMARC record"));
    out.push_back(make("dmarc.reporting", "skip", "No DMARC record"));
  } else {
    const std::string policy = str(d, "applied_policy");
    const auto pct = num(d, "pct", 100);
    json::object pev{{"policy", str(d, "policy")}, {"applied_policy", policy}, {"pct", pct}};
    if ((policy == "quarantine" || policy == "reject") && pct == 100) {
      out.push_back(make("dmarc.policy", "pass", "p=" + policy + " at pct=100", pev));
    } else {
      out.push_back(make(
          "dmarc.policy", "warn",
          "p=" + policy + (pct < 100 ? " at pct=" + std::to_string(pct) : std::string()), pev,
          "Once reports show your mail aligned, move to p=quarantine, then p=reject, at pct=100."));
    }
    const auto& rua = arr(d, "rua");
    out.push_back(rua.empty()
                      ? make("dmarc.reporting", "warn", "No rua= reporting address",
                             json::object{{"rua", rua}},
                             "Add rua=mailto:<address> to receive aggregate reports.")
                      : make("dmarc.reporting", "pass",
                             "Aggregate reports go to " + std::string(rua.front().as_string()),
                             json::object{{"rua", rua}}));
  }

  json::object rev{{"result", result},
                   {"spf_aligned", opt_bool(d, "spf_aligned").value_or(false)},
                   {"dkim_aligned", opt_bool(d, "dkim_aligned").value_or(false)},
                   {"from_domain", from}};
  if (result == "pass") {
    out.push_back(make("dmarc.result", "pass",
                       std::string("DMARC pass through aligned ") +
                           (opt_bool(d, "dkim_aligned").value_or(false) ? "DKIM" : "SPF"),
                       rev));
  } else if (result == "fail") {
    out.push_back(make(
        "dmarc.result", "fail", "DMARC fail: neither SPF nor DKIM passed aligned with " + from, rev,
        "Make SPF pass for a MAIL FROM in the From domain, or sign with DKIM d= of the "
        "From domain (Gmail: 550 5.7.26)."));
  } else if (result == "none") {
    out.push_back(make("dmarc.result", "skip", "No DMARC policy applies", rev));
  } else {
    out.push_back(
        make("dmarc.result", "error", "DMARC could not be evaluated (" + result + ")", rev));
  }

  // Gmail's own domains may only be used by Google's servers.
  const std::string f = core::lowercase(from);
  if (f != "gmail.com" && f != "googlemail.com") {
    out.push_back(make("dmarc.gmail_from", "skip", "The From domain is not a Gmail domain"));
  } else {
    bool from_google = result == "pass";
    out.push_back(
        from_google
            ? make("dmarc.gmail_from", "pass", "From " + f + " and authenticated by Google", rev)
            : make("dmarc.gmail_from", "fail", "From " + f + " sent from outside Google", rev,
                   "Do not put a Gmail address in From: send from your own domain and use "
                   "Reply-To for the Gmail address."));
  }
  return out;
}

}  // namespace

std::vector<check> auth_checks(const inputs& in) {
  auto out = spf(in);
  append(out, dkim(in));
  append(out, dmarc_checks(in));
  return out;
}

}  // namespace mxlens::analyzers::checks
