#include "analyzers/analysis/analysis.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <new>
#include <stdexcept>

#include <boost/json.hpp>

#include "analyzers/analysis/auth_results.hpp"
#include "analyzers/checks/checks.hpp"
#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/dns/idn.hpp"
#include "analyzers/message/message.hpp"
#include "analyzers/providers/providers.hpp"
#include "analyzers/rdns/rdns.hpp"
#include "analyzers/spf/spf.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers {

namespace json = boost::json;

namespace {

// Runs one analyzer; a failure becomes an entry of the analysis's errors, and false.
bool guarded(std::vector<std::string>& errors, const char* name, const std::function<void()>& f) {
  try {
    f();
    return true;
  } catch (const std::bad_alloc&) {
    errors.push_back(std::string(name) + ": out of memory (the analysis's memory limit)");
    return false;
  } catch (const std::exception& e) {
    errors.push_back(std::string(name) + ": " + e.what());
    return false;
  }
}

std::string hex_hash(std::string_view data) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// The provider rules' facts, from the session, the analyzers' results and the checks.
providers::facts provider_facts(const analysis_input& in, const analysis& a,
                                const message::content_facts& content) {
  auto status_of = [&](std::string_view id) {
    for (const auto& c : a.checks)
      if (c.id == id) return c.status;
    return checks::status::skip;
  };
  const auto& d = in.delivery;
  providers::facts f;
  f.client_ip = d.connection.client_ip;
  f.ipv6 = d.connection.ipv6;
  f.tls = !in.have_session || d.tls.used;
  f.fcrdns = a.rdns.fcrdns.value_or(true);  // unknown (DNS error): not judged
  f.spf_pass = a.spf.value == core::auth_result::pass;
  f.spf_domain = a.spf.domain.value_or("");
  for (const auto& s : a.dkim)
    if (s.result == core::auth_result::pass) f.dkim_pass = true;
  f.dmarc_result = a.dmarc.value;
  f.dmarc_record = a.dmarc.rec.has_value();
  f.dmarc_policy = a.dmarc.applied_policy.value_or("");
  f.from_domain = a.dmarc.from_domain.value_or("");
  if (f.from_domain.empty() && !content.from.domains.empty())
    f.from_domain = content.from.domains.front();
  f.from_fields = content.from.fields;
  f.from_addresses = static_cast<int>(content.from.addresses.size());
  if (auto dups = checks::duplicated_singletons(content.fields); !dups.empty())
    f.duplicate_header = dups.front();
  f.message_id_valid = status_of("hdr.message_id") == checks::status::pass;
  f.gmail_spoof = status_of("dmarc.gmail_from") == checks::status::fail;
  return f;
}

// The info (accepted) or warn check of one provider's verdicts.
checks::check provider_check(std::string_view provider, std::string_view name,
                             const providers::verdicts& v) {
  using providers::verdict;
  const bool accepted = v.ordinary.verdict == verdict::accept && v.bulk.verdict == verdict::accept;
  auto part = [](const providers::answer& x) {
    const std::string line = x.reply.substr(0, x.reply.find("\r\n"));
    return std::string(providers::to_string(x.verdict)) +
           (x.verdict == verdict::accept ? "" : " (" + line.substr(0, 60) + ")");
  };
  std::string summary =
      std::string(name) + ": " + part(v.ordinary) + "; as a bulk sender: " + part(v.bulk);
  std::optional<std::string> fix;
  if (!accepted)
    fix = "Fix the rule the reply names (" +
          (v.ordinary.verdict == verdict::accept ? v.bulk.rule : v.ordinary.rule) +
          "): its check above says how.";
  return {"provider." + std::string(provider),
          accepted ? checks::status::info : checks::status::warn, std::move(summary),
          json::value_from(v), std::move(fix)};
}

// The checks of the catalog, the providers' verdicts (with their checks) and the score.
void grade(const analysis_input& in, const message::content_facts& content, analysis& a) {
  a.checks = checks::evaluate({in.delivery, in.have_session, a.rdns, a.spf, a.spf_helo, a.dkim,
                               a.dmarc, a.arc, content, in.bulk});
  const auto& raw = in.delivery.raw;
  const std::string session_id = hex_hash(raw) + "." + std::to_string(raw.size() % 1000);
  a.providers = providers::judge_all(provider_facts(in, a, content), session_id,
                                     in.delivery.received_at / 1000);
  a.checks.push_back(provider_check("gmail", "Gmail", a.providers.gmail));
  a.checks.push_back(provider_check("yahoo", "Yahoo", a.providers.yahoo));
  a.checks.push_back(provider_check("outlook", "Outlook.com", a.providers.outlook));
  a.score = checks::score(a.checks);
}

}  // namespace

void tag_invoke(json::value_from_tag, json::value& v, const analysis_input& in) {
  auto delivery = json::value_from(in.delivery);
  delivery.as_object()["transcript"] = json::array{};
  v = json::object{{"delivery", std::move(delivery)},
                   {"have_session", in.have_session},
                   {"receiver", in.receiver},
                   {"bulk", in.bulk}};
}

analysis_input tag_invoke(json::value_to_tag<analysis_input>, const json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  analysis_input in;
  in.delivery = field<core::delivery>(o, "delivery");
  in.have_session = field<bool>(o, "have_session");
  in.receiver = text(o, "receiver");
  in.bulk = field<bool>(o, "bulk");
  return in;
}

void tag_invoke(json::value_from_tag, json::value& v, const analysis& a) {
  v = json::object{
      {"connection", json::value_from(a.rdns)},
      {"auth", json::object{{"spf", json::value_from(a.spf)},
                            {"spf_helo", core::optional_json(a.spf_helo)},
                            {"dkim", json::value_from(a.dkim)},
                            {"dmarc", json::value_from(a.dmarc)},
                            {"arc", json::value_from(a.arc)}}},
      {"received_chain", json::value_from(a.received_chain)},
      {"checks", json::value_from(a.checks)},
      {"score", json::value_from(a.score)},
      {"providers", json::value_from(a.providers)},
      {"dns", a.dns},
      {"analysis",
       json::object{
           {"duration_ms", a.duration_ms},
           {"errors",
            core::string_array(a.errors)}}}};  // An analysis that never ran has no header to show.
  if (!a.authentication_results.empty())
    v.at("auth").as_object()["authentication_results"] = a.authentication_results;
}

analysis tag_invoke(json::value_to_tag<analysis>, const json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  const auto& auth = object_of(member(o, "auth"));
  const auto& about = object_of(member(o, "analysis"));
  analysis a;
  a.rdns = field<rdns::result>(o, "connection");
  a.spf = field<spf::result>(auth, "spf");
  a.spf_helo = optional_field<spf::result>(auth, "spf_helo");
  a.dkim = field<std::vector<dkim::signature>>(auth, "dkim");
  a.dmarc = field<dmarc::result>(auth, "dmarc");
  // Reports stored before ARC was validated have no auth.arc: no chain was looked at.
  if (auth.contains("arc")) a.arc = field<arc::result>(auth, "arc");
  if (auth.contains("authentication_results"))
    a.authentication_results = text(auth, "authentication_results");
  a.received_chain = field<std::vector<message::hop>>(o, "received_chain");
  a.checks = field<std::vector<checks::check>>(o, "checks");
  a.score = field<core::score>(o, "score");
  a.providers = field<providers::judgement>(o, "providers");
  a.dns = member(o, "dns").as_array();
  a.duration_ms = field<std::int64_t>(about, "duration_ms");
  a.errors = field<std::vector<std::string>>(about, "errors");
  return a;
}

core::analysis_summary summary_of(const analysis& a) {
  core::analysis_summary s;
  s.score = a.score;
  s.spf = a.spf.value;
  for (const auto& d : a.dkim) s.dkim.push_back(d.result);
  s.dmarc = a.dmarc.value;
  s.errors = a.errors;
  return s;
}

namespace {

// An analysis that failed, wholly or in part, has no score: what its checks say rests on
// stand-ins for what could not be computed (CHECKS.md "Score").
core::score failed_score(core::score s, const std::string& error) {
  s.value.reset();
  s.unscored = "the analysis failed: " + error;
  return s;
}

}  // namespace

analysis failed_analysis(const std::string& error) {
  analysis a;
  a.rdns.helo_dns = rdns::helo_match::temperror;
  a.spf.value = core::auth_result::temperror;
  a.dmarc.value = core::auth_result::temperror;
  for (const auto& e : checks::catalog())
    a.checks.push_back(
        {std::string(e.id), checks::status::error, "Not evaluated: " + error, nullptr, {}});
  a.score = failed_score(checks::score(a.checks), error);
  // What a provider does when it cannot evaluate a message: a temporary failure.
  const providers::answer defer{
      providers::verdict::defer,
      "451 4.3.0 Temporary failure evaluating the message, try again later", "evaluation"};
  a.providers = {{defer, defer}, {defer, defer}, {defer, defer}};
  a.errors = {error};
  return a;
}

namespace {

// The questions an analysis of this message will ask whatever the answers: the client's reverse
// name, the EHLO name, the SPF records of the two identities, the signatures' keys and the From
// domains' DMARC records. They are asked together, before the analyzers ask them one by one.
std::vector<std::pair<std::string, dns::rr_type>> first_questions(const analysis_input& in) {
  const auto& c = in.delivery.connection;
  const auto& mail_from = in.delivery.envelope.mail_from;
  std::vector<std::pair<std::string, dns::rr_type>> q;
  if (auto rev = dns::reverse_name(c.client_ip); !rev.empty())
    q.emplace_back(rev, dns::rr_type::ptr);
  // In A-labels, as the analyzers ask them (RFC 8616 §4); an invalid IDN is not asked.
  const auto helo = dns::idn(c.helo);
  const bool literal = helo.ascii.empty() || helo.ascii.front() == '[' || !helo.valid();
  if (!literal) q.emplace_back(helo.ascii, c.ipv6 ? dns::rr_type::aaaa : dns::rr_type::a);
  if (auto at = mail_from.rfind('@'); at != std::string::npos)
    if (auto domain = dns::idn(mail_from.substr(at + 1)); domain.valid())
      q.emplace_back(domain.ascii, dns::rr_type::txt);
  if (!literal) q.emplace_back(helo.ascii, dns::rr_type::txt);
  const auto fields = message::header_fields(in.delivery.raw);
  int signatures = 0;
  for (const auto& f : fields) {
    if (core::lowercase(f.name) != "dkim-signature" || ++signatures > dkim::max_verified_signatures)
      continue;
    if (auto name = dkim::key_name(f.raw_value)) q.emplace_back(*name, dns::rr_type::txt);
  }
  const auto from = message::from(fields);
  for (std::size_t i = 0; i < from.domains.size() && i < 5; ++i)
    if (dns::idn(from.domains[i]).valid())
      q.emplace_back("_dmarc." + from.domains[i], dns::rr_type::txt);
  return q;
}

}  // namespace

void preload() {
  dkim::preload();
  dmarc::organizational_domain("mxlens.example");
}

analysis analyze(const analysis_input& in, dns::resolver& resolver) {
  const auto start = std::chrono::steady_clock::now();
  const auto& d = in.delivery;
  const auto& client_ip = d.connection.client_ip;
  const auto& helo = d.connection.helo;
  const auto& mail_from = d.envelope.mail_from;
  dns::lookups dns(resolver);
  try {
    resolver.prefetch(first_questions(in));
  } catch (const std::exception&) {
    // Only a head start: the analyzers ask again for whatever was not prefetched.
  }
  analysis a;
  std::vector<method_result> ar;

  // Stand-ins while an analyzer has not run, and if it fails: temporary errors.
  a.rdns.helo_dns = rdns::helo_match::temperror;
  a.spf.value = a.dmarc.value = core::auth_result::temperror;

  guarded(a.errors, "rdns", [&] {
    a.rdns = rdns::check(dns, client_ip, helo);
    method_result m{"iprev", a.rdns.iprev, "", {{"policy.iprev", client_ip}}, ""};
    if (!a.rdns.confirmed.empty()) m.comment = a.rdns.confirmed.front();
    ar.push_back(std::move(m));
  });

  spf::request sreq{client_ip, helo, mail_from, in.receiver};
  bool spf_ok = false;
  guarded(a.errors, "spf", [&] {
    a.spf = spf::check(dns, sreq, spf::identity::mailfrom);
    spf_ok = true;
    std::string who = mail_from.empty() ? a.spf.domain.value_or("") : mail_from;
    method_result m{"spf", a.spf.value, "", {}, ""};
    if (!who.empty()) m.properties.push_back({"smtp.mailfrom", who});
    ar.push_back(std::move(m));
  });
  guarded(a.errors, "spf_helo", [&] {
    auto r = spf::check(dns, sreq, spf::identity::helo);
    if (r.domain) ar.push_back({"spf", r.value, "", {{"smtp.helo", *r.domain}}, ""});
    a.spf_helo = std::move(r);
  });

  bool dkim_ok = false;
  guarded(a.errors, "dkim", [&] {
    a.dkim = dkim::verify(dns, d.raw);
    dkim_ok = true;
  });

  // The message as the checks and DMARC read it (GMime, bounded), parsed once.
  std::optional<message::content_facts> content;
  guarded(a.errors, "message", [&] {
    content = message::inspect(d.raw, d.envelope.smtputf8);
    a.received_chain = content->received.hops;
  });

  bool arc_ok = false;
  guarded(a.errors, "arc", [&] {
    a.arc = arc::validate(dns, d.raw);
    arc_ok = true;
  });

  bool dmarc_ok = false;
  guarded(a.errors, "dmarc", [&] {
    const auto from = content ? content->from : message::from(message::header_fields(d.raw));
    dmarc::inputs di;
    di.from_fields = from.fields;
    di.from_domains = from.domains;
    di.spf = spf_ok ? &a.spf : nullptr;
    di.dkim = &a.dkim;
    a.dmarc = dmarc::evaluate(dns, di);
    dmarc_ok = true;
  });

  for (const auto& s : a.dkim) {
    method_result m{"dkim", s.result, s.reason.value_or(""), {}, ""};
    m.properties = {{"header.d", s.domain},
                    {"header.i", s.identity},
                    {"header.s", s.selector},
                    {"header.a", s.algorithm}};
    if (!s.b_prefix.empty()) m.properties.push_back({"header.b", s.b_prefix.substr(0, 8)});
    ar.push_back(std::move(m));
  }
  if (a.dkim.empty())
    ar.push_back(
        {"dkim", dkim_ok ? core::auth_result::none : core::auth_result::temperror, "", {}, ""});
  if (dmarc_ok) {
    method_result m{"dmarc", a.dmarc.value, "", {}, ""};
    if (a.dmarc.from_domain) m.properties.push_back({"header.from", *a.dmarc.from_domain});
    if (a.dmarc.applied_policy) m.comment = "p=" + *a.dmarc.applied_policy;
    if (!a.dmarc.problem.empty()) m.reason = a.dmarc.problem;
    ar.push_back(std::move(m));
  }
  if (arc_ok) {
    // RFC 8617 §10.1: method arc, result none/pass/fail; the failing set as a comment.
    method_result m{"arc", core::auth_result::none, "", {}, ""};
    if (a.arc.cv != "none")
      m.result = a.arc.cv == "pass" ? core::auth_result::pass : core::auth_result::fail;
    if (a.arc.failed_instance) m.comment = "i=" + std::to_string(*a.arc.failed_instance);
    ar.push_back(std::move(m));
  } else {
    ar.push_back({"arc", core::auth_result::temperror, "", {}, ""});
  }
  a.authentication_results =
      authentication_results(in.receiver.empty() ? "mxlens" : in.receiver, ar);

  const bool graded = guarded(a.errors, "checks", [&] {
    if (!content) throw std::runtime_error("the message could not be read");
    grade(in, *content, a);
  });
  if (!graded) {
    // Nothing half-judged is shown: every check an error, every provider deferring.
    auto none = failed_analysis(a.errors.back());
    a.checks = std::move(none.checks);
    a.providers = std::move(none.providers);
  }
  if (!a.errors.empty()) a.score = failed_score(checks::score(a.checks), a.errors.front());

  a.dns = dns.evidence();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  a.duration_ms = std::llround(ms);
  return a;
}

}  // namespace mxlens::analyzers
