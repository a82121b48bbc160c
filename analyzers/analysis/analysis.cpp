#include "analyzers/analysis/analysis.hpp"

#include <chrono>
#include <exception>
#include <functional>

#include "analyzers/analysis/auth_results.hpp"
#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/message/message.hpp"
#include "analyzers/rdns/rdns.hpp"
#include "analyzers/spf/spf.hpp"

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

}  // namespace

json::object analysis_input_json(const analysis_input& in) {
  return {{"client_ip", in.client_ip},
          {"helo", in.helo},
          {"mail_from", in.mail_from},
          {"receiver", in.receiver}};
}

analysis_input analysis_input_from_json(const json::object& o) {
  analysis_input in;
  in.client_ip = str(o, "client_ip");
  in.helo = str(o, "helo");
  in.mail_from = str(o, "mail_from");
  in.receiver = str(o, "receiver");
  return in;
}

json::object analyze(const analysis_input& in, dns::resolver& resolver) {
  const auto start = std::chrono::steady_clock::now();
  dns::lookups dns(resolver);
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

  std::optional<dmarc::result> dm;
  message::from_addresses from;
  guarded(errors, "dmarc", [&] {
    auto fields = message::header_fields(in.raw);
    from = message::from(fields);
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
    m.properties = {{"header.d", s.domain}, {"header.i", s.identity}, {"header.s", s.selector},
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

  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return {{"connection", std::move(connection)},
          {"auth", std::move(auth)},
          {"dns", dns.evidence()},
          {"analysis", json::object{{"duration_ms", static_cast<std::int64_t>(ms + 0.5)},
                                    {"errors", std::move(errors)}}}};
}

}  // namespace mxlens::analyzers
