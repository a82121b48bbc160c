#include "analyzers/analysis/analysis.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <stdexcept>

#include "analyzers/analysis/auth_results.hpp"
#include "analyzers/checks/checks.hpp"
#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/message/message.hpp"
#include "analyzers/providers/providers.hpp"
#include "analyzers/rdns/rdns.hpp"
#include "analyzers/spf/spf.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers {

namespace json = boost::json;

namespace {

std::string str(const json::object& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : "";
}

// Runs one analyzer; a failure becomes an entry of analysis.errors.
void guarded(json::array& errors, const char* name, const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    errors.emplace_back(std::string(name) + ": " + e.what());
  }
}

std::string hex_hash(std::string_view data) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

const json::object& member(const json::object& o, const char* key) {
  static const json::object empty;
  auto* v = o.if_contains(key);
  return v && v->is_object() ? v->as_object() : empty;
}

std::string status_of(const json::array& checks, std::string_view id) {
  for (const auto& c : checks)
    if (c.as_object().at("id").as_string() == id)
      return std::string(c.as_object().at("status").as_string());
  return "";
}

// The checks of the catalog, the score, and the providers' verdicts (with their checks).
void grade(const analysis_input& in, const message::content_facts& content,
           const json::object& analysis_connection, const json::object& auth,
           json::array& checks_out, json::object& score_out, json::object& providers_out) {
  const auto& envelope = member(in.session, "envelope");
  json::object connection = member(in.session, "connection");
  if (connection.empty()) {
    connection["client_ip"] = in.client_ip;
    connection["helo"] = in.helo;
  }
  for (const auto& [k, v] : analysis_connection) connection[k] = v;
  const bool have_session = !in.session.empty();
  const json::object envelope_or_flags =
      envelope.empty() ? json::object{{"mail_from", in.mail_from}} : envelope;
  checks::inputs ci{connection,
                    member(in.session, "tls"),
                    envelope_or_flags,
                    member(in.session, "data"),
                    auth,
                    content,
                    in.received_at,
                    in.bulk,
                    have_session};
  auto found = checks::evaluate(ci);
  for (const auto& c : found) checks_out.push_back(checks::to_json(c));

  providers::facts pf;
  pf.client_ip = in.client_ip;
  pf.ipv6 = in.client_ip.find(':') != std::string::npos;
  auto tls_used = member(in.session, "tls").if_contains("used");
  pf.tls = !have_session || (tls_used && tls_used->is_bool() && tls_used->as_bool());
  auto fcrdns = connection.if_contains("fcrdns");
  pf.fcrdns =
      !fcrdns || !fcrdns->is_bool() || fcrdns->as_bool();  // unknown (DNS error): not judged
  const auto& spf = member(auth, "spf");
  pf.spf_pass = spf.contains("result") && spf.at("result") == "pass";
  pf.spf_domain = spf.contains("domain") && spf.at("domain").is_string()
                      ? std::string(spf.at("domain").as_string())
                      : "";
  if (auto* sigs = auth.if_contains("dkim"); sigs && sigs->is_array())
    for (const auto& s : sigs->as_array())
      if (s.as_object().at("result") == "pass") pf.dkim_pass = true;
  const auto& dm = member(auth, "dmarc");
  auto text = [](const json::object& o, const char* k) {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  pf.dmarc_result = text(dm, "result");
  pf.dmarc_record = dm.contains("record") && dm.at("record").is_string();
  pf.dmarc_policy = text(dm, "applied_policy");
  pf.from_domain = text(dm, "from_domain");
  if (pf.from_domain.empty() && !content.from.domains.empty())
    pf.from_domain = content.from.domains.front();
  pf.from_fields = content.from.fields;
  pf.from_addresses = static_cast<int>(content.from.addresses.size());
  for (const auto& c : found)
    if (c.id == "hdr.duplicates" && c.status == "fail")
      pf.duplicate_header =
          std::string(c.evidence.as_object().at("duplicated").as_array().at(0).as_string());
  pf.message_id_valid = status_of(checks_out, "hdr.message_id") == "pass";
  pf.gmail_spoof = status_of(checks_out, "dmarc.gmail_from") == "fail";

  const std::string session_id = hex_hash(in.raw) + "." + std::to_string(in.raw.size() % 1000);
  providers_out = providers::to_json(pf, session_id, in.received_at / 1000);
  for (const char* p : {"gmail", "yahoo", "outlook"}) {
    const auto& v = providers_out.at(p).as_object();
    const bool accepted = v.at("verdict") == "accept" && v.at("bulk_verdict") == "accept";
    std::string name = p == std::string("gmail")   ? "Gmail"
                       : p == std::string("yahoo") ? "Yahoo"
                                                   : "Outlook.com";
    auto first_line = [](const json::value& r) {
      std::string s(r.as_string());
      return s.substr(0, s.find("\r\n"));
    };
    std::string summary =
        name + ": " + std::string(v.at("verdict").as_string()) +
        (v.at("verdict") == "accept" ? "" : " (" + first_line(v.at("reply")).substr(0, 60) + ")") +
        "; as a bulk sender: " + std::string(v.at("bulk_verdict").as_string()) +
        (v.at("bulk_verdict") == "accept"
             ? ""
             : " (" + first_line(v.at("bulk_reply")).substr(0, 60) + ")");
    checks::check c{
        std::string("provider.") + p, accepted ? "info" : "warn", summary, v,
        accepted ? std::nullopt
                 : std::optional<std::string>(
                       "Fix the rule the reply names (" +
                       std::string(
                           v.at(v.at("verdict") == "accept" ? "bulk_rule" : "rule").as_string()) +
                       "): its check above says how.")};
    found.push_back(c);
    checks_out.push_back(checks::to_json(c));
  }
  score_out = checks::to_json(checks::score(found));
}

}  // namespace

json::object analysis_input_json(const analysis_input& in) {
  return {{"client_ip", in.client_ip},
          {"helo", in.helo},
          {"mail_from", in.mail_from},
          {"receiver", in.receiver},
          {"session", in.session},
          {"received_at", in.received_at},
          {"bulk", in.bulk}};
}

analysis_input analysis_input_from_json(const json::object& o) {
  analysis_input in;
  in.client_ip = str(o, "client_ip");
  in.helo = str(o, "helo");
  in.mail_from = str(o, "mail_from");
  in.receiver = str(o, "receiver");
  if (auto* s = o.if_contains("session"); s && s->is_object()) in.session = s->as_object();
  if (auto* t = o.if_contains("received_at"); t && t->is_int64()) in.received_at = t->as_int64();
  if (auto* b = o.if_contains("bulk"); b && b->is_bool()) in.bulk = b->as_bool();
  return in;
}

namespace {

// The questions an analysis of this message will ask whatever the answers: the client's reverse
// name, the EHLO name, the SPF records of the two identities, the signatures' keys and the From
// domains' DMARC records. They are asked together, before the analyzers ask them one by one.
std::vector<std::pair<std::string, dns::rr_type>> first_questions(const analysis_input& in) {
  std::vector<std::pair<std::string, dns::rr_type>> q;
  if (auto rev = dns::reverse_name(in.client_ip); !rev.empty())
    q.emplace_back(rev, dns::rr_type::ptr);
  const auto helo = dns::normalize_name(in.helo);
  const bool literal = helo.empty() || helo.front() == '[';
  if (!literal) {
    const bool v6 = in.client_ip.find(':') != std::string::npos;
    q.emplace_back(helo, v6 ? dns::rr_type::aaaa : dns::rr_type::a);
  }
  if (auto at = in.mail_from.rfind('@'); at != std::string::npos)
    q.emplace_back(in.mail_from.substr(at + 1), dns::rr_type::txt);
  if (!literal) q.emplace_back(helo, dns::rr_type::txt);
  const auto fields = message::header_fields(in.raw);
  int signatures = 0;
  for (const auto& f : fields) {
    if (core::lowercase(f.name) != "dkim-signature" || ++signatures > dkim::max_verified_signatures)
      continue;
    if (auto name = dkim::key_name(f.raw_value)) q.emplace_back(*name, dns::rr_type::txt);
  }
  const auto from = message::from(fields);
  for (std::size_t i = 0; i < from.domains.size() && i < 5; ++i)
    q.emplace_back("_dmarc." + from.domains[i], dns::rr_type::txt);
  return q;
}

}  // namespace

json::object analyze(const analysis_input& in, dns::resolver& resolver) {
  const auto start = std::chrono::steady_clock::now();
  dns::lookups dns(resolver);
  try {
    resolver.prefetch(first_questions(in));
  } catch (const std::exception&) {
    // Only a head start: the analyzers ask again for whatever was not prefetched.
  }
  json::array errors;
  json::object connection;
  json::object auth;
  std::vector<method_result> ar;

  guarded(errors, "rdns", [&] {
    auto r = rdns::check(dns, in.client_ip, in.helo);
    rdns::add_to_connection(r, connection);
    method_result m{"iprev", r.iprev, "", {{"policy.iprev", in.client_ip}}, ""};
    if (!r.confirmed.empty()) m.comment = r.confirmed.front();
    ar.push_back(std::move(m));
  });

  spf::request sreq{in.client_ip, in.helo, in.mail_from, in.receiver};
  std::optional<spf::result> spf_mailfrom;
  guarded(errors, "spf", [&] {
    spf_mailfrom = spf::check(dns, sreq, spf::identity::mailfrom);
    auth["spf"] = spf::to_json(*spf_mailfrom);
    std::string who = in.mail_from.empty() ? spf_mailfrom->domain.value_or("") : in.mail_from;
    method_result m{"spf", spf_mailfrom->value, "", {}, ""};
    if (!who.empty()) m.properties.push_back({"smtp.mailfrom", who});
    ar.push_back(std::move(m));
  });
  if (!spf_mailfrom) auth["spf"] = json::object{{"result", "temperror"}, {"domain", nullptr}};
  guarded(errors, "spf_helo", [&] {
    auto r = spf::check(dns, sreq, spf::identity::helo);
    auth["spf_helo"] = spf::to_json(r);
    if (r.domain) ar.push_back({"spf", r.value, "", {{"smtp.helo", *r.domain}}, ""});
  });
  if (!auth.contains("spf_helo")) auth["spf_helo"] = nullptr;

  std::vector<dkim::signature> signatures;
  bool dkim_ok = false;
  guarded(errors, "dkim", [&] {
    signatures = dkim::verify(dns, in.raw);
    dkim_ok = true;
  });

  // The message as the checks and DMARC read it (GMime, bounded), parsed once.
  std::optional<message::content_facts> content;
  guarded(errors, "message", [&] {
    const auto& envelope = member(in.session, "envelope");
    auto* utf8 = envelope.if_contains("smtputf8");
    content = message::inspect(in.raw, utf8 && utf8->is_bool() && utf8->as_bool());
  });

  std::optional<dmarc::result> dm;
  guarded(errors, "dmarc", [&] {
    const auto from = content ? content->from : message::from(message::header_fields(in.raw));
    dmarc::inputs di;
    di.from_fields = from.fields;
    di.from_domains = from.domains;
    di.spf = spf_mailfrom ? &*spf_mailfrom : nullptr;
    di.dkim = &signatures;
    dm = dmarc::evaluate(dns, di);
    auth["dmarc"] = dmarc::to_json(*dm);
  });
  if (!dm) auth["dmarc"] = json::object{{"result", "temperror"}, {"from_domain", nullptr}};

  json::array sigs;
  for (const auto& s : signatures) {
    sigs.push_back(dkim::to_json(s));
    method_result m{"dkim", s.result, s.reason.value_or(""), {}, ""};
    m.properties = {{"header.d", s.domain},
                    {"header.i", s.identity},
                    {"header.s", s.selector},
                    {"header.a", s.algorithm}};
    if (!s.b_prefix.empty()) m.properties.push_back({"header.b", s.b_prefix.substr(0, 8)});
    ar.push_back(std::move(m));
  }
  if (signatures.empty()) {
    ar.push_back({"dkim", dkim_ok ? "none" : "temperror", "", {}, ""});
  }
  auth["dkim"] = std::move(sigs);
  if (dm) {
    method_result m{"dmarc", dm->value, "", {}, ""};
    if (dm->from_domain) m.properties.push_back({"header.from", *dm->from_domain});
    if (dm->applied_policy) m.comment = "p=" + *dm->applied_policy;
    if (!dm->problem.empty()) m.reason = dm->problem;
    ar.push_back(std::move(m));
  }
  auth["authentication_results"] =
      authentication_results(in.receiver.empty() ? "mxlens" : in.receiver, ar);

  json::array checks;
  json::object score, providers_json;
  guarded(errors, "checks", [&] {
    if (!content) throw std::runtime_error("the message could not be read");
    grade(in, *content, connection, auth, checks, score, providers_json);
  });

  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return {
      {"connection", std::move(connection)},
      {"auth", std::move(auth)},
      {"checks", std::move(checks)},
      {"score", std::move(score)},
      {"providers", std::move(providers_json)},
      {"dns", dns.evidence()},
      {"analysis", json::object{{"duration_ms", std::llround(ms)}, {"errors", std::move(errors)}}}};
}

}  // namespace mxlens::analyzers
