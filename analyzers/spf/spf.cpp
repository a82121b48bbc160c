#include "analyzers/spf/spf.hpp"

#include <ctime>

#include "analyzers/dns/idn.hpp"
#include "analyzers/spf/evaluate.hpp"
#include "analyzers/spf/libspf2.hpp"
#include "core/json.hpp"

namespace mxlens::analyzers::spf {

namespace {

// §4.3: the domain and <sender> of the identity; the HELO identity, and the null sender (§2.4),
// are checked as postmaster@HELO, and a MAIL FROM without a local-part as postmaster@domain.
// Both names in A-labels (RFC 8616 §4): an SMTPUTF8 MAIL FROM may carry U-labels. `forms` is
// the domain's, for the report and for an invalid IDN.
host_request identity_request(const request& req, identity id, dns::idn_forms& forms) {
  host_request h;
  h.client_ip = req.client_ip;
  const auto helo = dns::idn(req.helo);
  h.helo = helo.ascii;
  h.receiver = req.receiver;
  h.now = std::time(nullptr);
  std::string local;
  if (id == identity::helo || req.mail_from.empty()) {
    forms = helo;
  } else {
    const auto at = req.mail_from.rfind('@');
    forms = dns::idn(at == std::string::npos ? "" : req.mail_from.substr(at + 1));
    local = at == std::string::npos ? "" : req.mail_from.substr(0, at);
  }
  h.domain = forms.ascii;
  h.sender = (local.empty() ? "postmaster" : local) + "@" + h.domain;
  return h;
}

boost::json::value term_json(const term_result& t) {
  boost::json::object o{{"term", t.term},
                        {"position", t.position},
                        {"lookups", t.lookups},
                        {"void_lookups", t.void_lookups},
                        {"matched", t.matched}};
  if (!t.error.empty()) o["error"] = t.error;
  return o;
}

term_result term_of(const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  term_result t;
  t.term = text(o, "term");
  t.position = field<std::size_t>(o, "position");
  t.lookups = field<int>(o, "lookups");
  t.void_lookups = field<int>(o, "void_lookups");
  t.matched = field<bool>(o, "matched");
  if (o.contains("error")) t.error = text(o, "error");
  return t;
}

}  // namespace

result check(dns::lookups& dns, const request& req, identity id) {
  dns::idn_forms forms;
  const auto h = identity_request(req, id, forms);
  if (!forms.valid()) {
    // §4.3: a malformed domain gives none, and is not asked of DNS in a form it does not have.
    result out;
    out.domain = out.domain_unicode = forms.ascii;
    out.problem = "the domain " + forms.problem + " (RFC 7208 §4.3, RFC 8616 §4)";
    return out;
  }
  const query_fn query = [&dns](const std::string& name, dns::rr_type type) {
    return dns.query(name, type);
  };
  result out = check_host(query, h);
  if (out.domain && out.domain->empty()) out.domain.reset();
  if (out.domain) out.domain_unicode = forms.unicode;
  // libspf2 is asked only where there is a record to disagree about, with the same A-labels.
  if (out.records > 0) {
    request theirs_req = req;
    theirs_req.helo = h.helo;
    const auto theirs = libspf2_check(dns, theirs_req, h.sender);
    if (theirs && *theirs != out.value) out.libspf2 = *theirs;
  }
  return out;
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r) {
  using core::optional_json;
  boost::json::array terms;
  for (const auto& t : r.terms) terms.push_back(term_json(t));
  boost::json::object o{{"result", core::to_string(r.value)},
                        {"domain", optional_json(r.domain)},
                        {"domain_unicode", optional_json(r.domain_unicode)},
                        {"record", optional_json(r.record)},
                        {"lookups", r.lookups},
                        {"void_lookups", r.void_lookups},
                        {"explanation", optional_json(r.explanation)},
                        {"records", r.records},
                        {"terms", std::move(terms)},
                        {"decided_by", optional_json(r.decided_by)}};
  if (!r.record_error.empty()) o["record_error"] = r.record_error;
  if (!r.problem.empty()) o["problem"] = r.problem;
  if (r.libspf2) o["libspf2"] = core::to_string(*r.libspf2);
  v = std::move(o);
}

result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  result r;
  r.value = core::auth_result_of(text(o, "result"));
  r.domain = optional_field<std::string>(o, "domain");
  // Absent in reports stored before both forms were shown: derived from the domain.
  r.domain_unicode = o.contains("domain_unicode") ? optional_field<std::string>(o, "domain_unicode")
                     : r.domain                   ? std::optional(dns::idn(*r.domain).unicode)
                                                  : std::nullopt;
  r.record = optional_field<std::string>(o, "record");
  r.lookups = field<int>(o, "lookups");
  r.void_lookups = field<int>(o, "void_lookups");
  r.explanation = optional_field<std::string>(o, "explanation");
  r.records = field<int>(o, "records");
  if (o.contains("record_error")) r.record_error = text(o, "record_error");
  if (o.contains("problem")) r.problem = text(o, "problem");
  if (o.contains("terms"))
    for (const auto& t : o.at("terms").as_array()) r.terms.push_back(term_of(t));
  r.decided_by = optional_field<std::string>(o, "decided_by");
  if (o.contains("libspf2")) r.libspf2 = core::auth_result_of(text(o, "libspf2"));
  return r;
}

}  // namespace mxlens::analyzers::spf
