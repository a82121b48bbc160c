#include "analyzers/dmarc/dmarc.hpp"

#include <libpsl.h>

#include <cctype>
#include <mutex>

#include "analyzers/dns/idn.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"

namespace mxlens::analyzers::dmarc {

namespace {

constexpr const char* psl_file = "/usr/share/publicsuffix/public_suffix_list.dat";

const psl_ctx_t* psl() {
  static const psl_ctx_t* ctx = [] {
    const psl_ctx_t* c = psl_load_file(psl_file);
    return c ? c : psl_builtin();  // the list built into libpsl when Debian's file is missing
  }();
  return ctx;
}

bool valid_uri(const std::string& u) {
  // RFC 3986 §2: a URI is printable ASCII.
  for (unsigned char c : u)
    if (c <= 0x20 || c >= 0x7F) return false;
  auto colon = u.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == u.size()) return false;
  if (!std::isalpha(static_cast<unsigned char>(u[0]))) return false;
  for (std::size_t i = 1; i < colon; ++i) {
    char c = u[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return false;
  }
  auto scheme = core::lowercase(u.substr(0, colon));
  if (scheme == "mailto") {
    auto rest = u.substr(colon + 1);
    auto at = rest.find('@');
    return at != std::string::npos && at > 0 && at + 1 < rest.size();
  }
  return true;
}

std::optional<std::string> policy_value(const std::string& v) {
  auto l = core::lowercase(v);
  if (l == "none" || l == "quarantine" || l == "reject") return l;
  return std::nullopt;
}

// How strict an outcome is, for a From field with several domains: a domain without a policy
// restricts nothing, so any other outcome stands over it.
int severity(core::auth_result r) {
  switch (r) {
    case core::auth_result::none: return 0;
    case core::auth_result::pass: return 1;
    case core::auth_result::temperror: return 2;
    case core::auth_result::fail: return 3;
    default: return 4;  // permerror
  }
}

}  // namespace

std::string organizational_domain(std::string_view domain) {
  // RFC 8616 §4: in A-labels, the form libpsl also knows the list's IDN suffixes in.
  std::string d = dns::idn(domain).ascii;
  if (d.empty()) return d;
  const char* reg = psl_registrable_domain(psl(), d.c_str());
  return reg ? std::string(reg) : d;
}

bool aligned(std::string_view from_domain, std::string_view auth_domain, char mode) {
  // RFC 8616 §4: both in A-labels, so that a U-label From and an A-label d= are one name.
  const auto from = dns::idn(from_domain), auth = dns::idn(auth_domain);
  const std::string& f = from.ascii;
  const std::string& a = auth.ascii;
  if (!from.valid() || !auth.valid() || f.empty() || a.empty()) return false;
  if (mode == 's') return f == a;
  // A public suffix aligns with nothing but itself.
  if (psl_is_public_suffix(psl(), a.c_str())) return f == a;
  return organizational_domain(f) == organizational_domain(a);
}

bool is_dmarc_record(std::string_view text) {
  // §6.4: "v" *WSP "=" *WSP "DMARC1", the first tag; the value is case-sensitive.
  auto semi = text.find(';');
  auto first = text.substr(0, semi == std::string_view::npos ? text.size() : semi);
  auto eq = first.find('=');
  if (eq == std::string_view::npos) return false;
  auto name = core::trim(first.substr(0, eq));
  return (name == "v" || name == "V") && core::trim(first.substr(eq + 1)) == "DMARC1";
}

std::optional<record> parse(std::string_view text, std::string& problem) {
  problem.clear();
  if (!is_dmarc_record(text)) return std::nullopt;
  record r;
  r.text = std::string(text);
  std::optional<std::string> p, sp;
  bool p_bad = false, sp_bad = false;
  std::string p_text, sp_text;  // as given, for saying what is wrong with them
  std::size_t pos = text.find(';');
  while (pos != std::string_view::npos && pos < text.size()) {
    ++pos;
    auto end = text.find(';', pos);
    auto item = text.substr(pos, (end == std::string_view::npos ? text.size() : end) - pos);
    pos = end;
    auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (!core::trim(item).empty())
        r.warnings.push_back("ignored '" + core::ascii_escaped(core::trim(item)) + "'");
      continue;
    }
    auto name = core::lowercase(core::trim(item.substr(0, eq)));
    auto value = core::trim(item.substr(eq + 1));
    if (name == "p") {
      p = policy_value(value);
      p_bad = !p;
      p_text = core::ascii_escaped(value);
    } else if (name == "sp") {
      sp = policy_value(value);
      sp_bad = !sp;
      sp_text = core::ascii_escaped(value);
    } else if (name == "adkim" || name == "aspf") {
      auto v = core::lowercase(value);
      if (v == "r" || v == "s") {
        (name == "adkim" ? r.adkim : r.aspf) = v[0];
      } else {
        r.warnings.push_back("invalid " + name + "=" + core::ascii_escaped(value) +
                             " ignored (relaxed)");
      }
    } else if (name == "pct") {
      bool digits = !value.empty() && value.size() <= 3 &&
                    value.find_first_not_of("0123456789") == std::string::npos;
      int v = digits ? std::stoi(value) : -1;
      if (v >= 0 && v <= 100) {
        r.pct = v;
      } else {
        r.warnings.push_back("invalid pct=" + core::ascii_escaped(value) + " ignored (100)");
      }
    } else if (name == "psd" || name == "t") {
      // draft-ietf-dmarc-dmarcbis §4.7: psd= is y, n or u; t= is y or n.
      auto v = core::lowercase(value);
      const bool ok = v == "y" || v == "n" || (name == "psd" && v == "u");
      if (!ok) {
        r.warnings.push_back("invalid " + name + "=" + core::ascii_escaped(value) + " ignored");
      } else if (name == "psd") {
        r.psd = v[0];
      } else {
        r.testing = v == "y";
      }
    } else if (name == "np") {
      if (auto v = policy_value(value)) {
        r.np = v;
      } else {
        r.warnings.push_back("invalid np=" + core::ascii_escaped(value) + " ignored");
      }
    } else if (name == "rua") {
      std::size_t s = 0;
      while (s <= value.size()) {
        auto c = value.find(',', s);
        if (c == std::string::npos) c = value.size();
        auto uri = core::trim(std::string_view(value).substr(s, c - s));
        auto bang = uri.find('!');  // an optional size limit (§6.2)
        if (valid_uri(uri.substr(0, bang))) {
          r.rua.push_back(uri);
        } else if (!uri.empty()) {
          r.warnings.push_back("invalid rua URI '" + core::ascii_escaped(uri) + "' ignored");
        }
        s = c + 1;
      }
    }
    // Unknown tags are ignored (§6.3).
  }
  if (!p || p_bad || sp_bad) {
    // §6.6.3 step 6: without a valid p= (or with an invalid sp=), a record with a valid rua=
    // counts as p=none; otherwise DMARC is not applied.
    const std::string why =
        !p ? (p_bad ? "p=" + p_text + " is not a valid policy" : "p= is missing")
           : "sp=" + sp_text + " is not a valid policy";
    if (!r.rua.empty()) {
      r.policy = "none";
      r.subdomain_policy.reset();
      r.warnings.push_back(why + ": treated as p=none");
      return r;
    }
    problem = why;
    return std::nullopt;
  }
  r.policy = *p;
  r.subdomain_policy = sp;
  return r;
}

namespace {

// Discovery and evaluation for one From domain.
result evaluate_domain(dns::lookups& dns, const std::string& domain, const inputs& in) {
  result out;
  const auto forms = dns::idn(domain);
  out.from_domain = forms.ascii;
  out.from_domain_unicode = forms.unicode;
  if (!forms.valid()) {
    // RFC 8616 §4: the record is asked for in A-labels, and a name that has none is no name to
    // ask for; nothing is looked up.
    out.value = core::auth_result::permerror;
    out.problem = "the From domain " + forms.problem;
    return out;
  }
  const std::string& from_domain = forms.ascii;
  out.org_domain = organizational_domain(from_domain);
  out.org_domain_unicode = dns::idn(*out.org_domain).unicode;

  // §6.6.3: the From domain, then its organizational domain.
  std::vector<std::string> places{from_domain};
  if (*out.org_domain != from_domain) places.push_back(*out.org_domain);
  for (const auto& place : places) {
    const auto& a = dns.query("_dmarc." + place, dns::rr_type::txt);
    if (a.state == dns::status::temperror) {
      out.value = core::auth_result::temperror;
      out.problem = "DMARC record lookup failed at _dmarc." + place + ": " + a.error;
      return out;
    }
    std::vector<std::string> candidates;
    for (const auto& r : a.records) {
      if (is_dmarc_record(r)) {
        candidates.push_back(r);
        continue;
      }
      // Step 2 discards a record that does not begin with v=DMARC1, whatever precedes it (a
      // byte order mark, say); said in `problem`, as the result is none.
      const auto at = r.find("v=DMARC1");
      if (out.problem.empty() && at != 0 && at != std::string::npos &&
          !core::non_ascii_item(r.substr(0, at), ';').empty())
        out.problem = "_dmarc." + place + " has a TXT record with " +
                      core::ascii_escaped(r.substr(0, at)) +
                      " before v=DMARC1, so it is not a DMARC record (RFC 7489 §6.6.3)";
    }
    if (candidates.empty()) continue;
    out.problem.clear();
    out.record_domain = place;
    if (candidates.size() > 1) {
      // §6.6.3 step 5: several records end discovery; reported as the RFC 8601 permerror.
      out.value = core::auth_result::permerror;
      out.problem = std::to_string(candidates.size()) + " DMARC records at _dmarc." + place;
      return out;
    }
    std::string problem;
    out.rec = parse(candidates.front(), problem);
    if (!out.rec) {
      out.value = core::auth_result::permerror;
      out.problem = "invalid DMARC record at _dmarc." + place + ": " + problem;
      return out;
    }
    break;
  }
  if (!out.rec) {
    out.value = core::auth_result::none;
    return out;
  }
  const auto& rec = *out.rec;
  out.applied_policy = (*out.record_domain == from_domain || !rec.subdomain_policy)
                           ? rec.policy
                           : *rec.subdomain_policy;

  if (in.spf && in.spf->value == core::auth_result::pass && in.spf->domain)
    out.spf_aligned = aligned(from_domain, *in.spf->domain, rec.aspf);
  if (in.dkim) {
    for (auto& sig : *in.dkim) {
      bool a = aligned(from_domain, sig.domain, rec.adkim);
      if (a && sig.result == core::auth_result::pass) out.dkim_aligned = true;
      sig.aligned = sig.aligned || a;
    }
  }
  out.value =
      (out.spf_aligned || out.dkim_aligned) ? core::auth_result::pass : core::auth_result::fail;
  return out;
}

}  // namespace

std::vector<std::string> tree_walk_names(std::string_view domain) {
  // draft-ietf-dmarc-dmarcbis §4.10 steps 4-8: the Author Domain first; with 8 or more labels
  // the next target keeps its last 7, then each target loses its left-most label "until there
  // are no more labels remaining", so the one-label name is asked too. At most 8 queries.
  std::string d(domain);
  while (!d.empty() && d.back() == '.') d.pop_back();
  std::vector<std::string> labels;
  std::size_t s = 0;
  while (s <= d.size() && !d.empty()) {
    auto dot = d.find('.', s);
    if (dot == std::string::npos) dot = d.size();
    labels.push_back(d.substr(s, dot - s));
    s = dot + 1;
  }
  std::vector<std::string> names;
  if (labels.empty()) return names;
  auto join = [&](std::size_t from) {
    std::string n;
    for (std::size_t i = from; i < labels.size(); ++i) n += (n.empty() ? "" : ".") + labels[i];
    return n;
  };
  names.push_back(join(0));
  std::size_t keep = labels.size() >= 8 ? 7 : labels.size() - 1;
  for (; keep >= 1; --keep) names.push_back(join(labels.size() - keep));
  return names;
}

bis_result evaluate_bis(dns::lookups& dns, const std::string& from_domain, const result& rfc7489) {
  bis_result out;
  struct found {
    std::string domain;
    record rec;
  };
  std::vector<found> records;  // the valid single records met, from the From domain up
  for (const auto& name : tree_walk_names(from_domain)) {
    out.queries.push_back("_dmarc." + name);
    // The lookups answer a question once: those of the RFC 7489 discovery are not asked again.
    const auto& a = dns.query(out.queries.back(), dns::rr_type::txt);
    std::vector<std::string> candidates;
    for (const auto& r : a.records)
      if (is_dmarc_record(r)) candidates.push_back(r);
    if (candidates.size() != 1) continue;  // §4.10 step 7: none or several, the walk goes on
    std::string problem;
    auto rec = parse(candidates.front(), problem);
    if (!rec) continue;
    records.push_back({name, *rec});
    // §4.10.1: the walk for the Organizational Domain ends at a record with psd=n or psd=y.
    if (rec->psd != 'u') break;
  }
  // §4.10.1: psd=n makes its domain the Organizational Domain; psd=y makes it a Public Suffix
  // Domain and the Organizational Domain the name one label below it towards the Author
  // Domain; otherwise the record with the fewest labels names it; with no record at all, the
  // Author Domain is its own.
  out.org_domain = from_domain;
  if (!records.empty()) {
    const auto& last = records.back();
    if (last.rec.psd == 'y') {
      if (last.domain != from_domain) {
        auto prefix = from_domain.substr(0, from_domain.size() - last.domain.size() - 1);
        auto dot = prefix.rfind('.');
        out.org_domain =
            (dot == std::string::npos ? prefix : prefix.substr(dot + 1)) + "." + last.domain;
      }
    } else {
      out.org_domain = last.domain;
    }
  }
  out.org_domain_unicode = dns::idn(out.org_domain).unicode;
  // §4.10: the policy is the first record the walk meets, the Author Domain's own first.
  if (!records.empty()) {
    const auto& first = records.front();
    out.record_domain = first.domain;
    if (first.domain == from_domain) {
      out.applied_policy = first.rec.policy;
      out.policy_source = "p";
    } else {
      // §5.3.1 (np=): a non-existent Author Domain, one whose name gives NXDOMAIN (RFC 9091
      // §2.1), takes np= when given; otherwise sp=, then p=.
      bool nonexistent = false;
      if (first.rec.np) {
        nonexistent = dns.query(from_domain, dns::rr_type::a).state == dns::status::nxdomain;
      }
      if (nonexistent) {
        out.applied_policy = first.rec.np;
        out.policy_source = "np";
      } else if (first.rec.subdomain_policy) {
        out.applied_policy = first.rec.subdomain_policy;
        out.policy_source = "sp";
      } else {
        out.applied_policy = first.rec.policy;
        out.policy_source = "p";
      }
    }
  }
  if (rfc7489.org_domain && *rfc7489.org_domain != out.org_domain)
    out.differs.emplace_back("org_domain");
  if (rfc7489.applied_policy != out.applied_policy) out.differs.emplace_back("policy");
  if (rfc7489.record_domain != out.record_domain) out.differs.emplace_back("record_domain");
  return out;
}

result evaluate(dns::lookups& dns, const inputs& in) {
  if (in.dkim) {
    for (auto& sig : *in.dkim) sig.aligned = false;
  }
  if (in.from_fields != 1 || in.from_domains.empty()) {
    // §6.6.1: a message without exactly one From field naming a domain cannot be evaluated.
    result out;
    out.value = core::auth_result::permerror;
    out.problem = in.from_fields == 0 ? "the message has no From field"
                  : in.from_fields > 1
                      ? "the message has " + std::to_string(in.from_fields) + " From fields"
                      : "the From field has no usable address";
    return out;
  }
  // §6.6.1: several From domains are each evaluated; the strictest outcome stands.
  std::optional<result> worst;
  for (const auto& domain : in.from_domains) {
    auto r = evaluate_domain(dns, domain, in);
    if (!worst || severity(r.value) > severity(worst->value)) worst = std::move(r);
  }
  worst->from_domains = in.from_domains;
  // The DMARCbis walk for the domain whose outcome stands, unless its discovery failed or its
  // name could not be asked for.
  if (worst->from_domain && worst->org_domain && worst->value != core::auth_result::temperror)
    worst->bis = evaluate_bis(dns, *worst->from_domain, *worst);
  return *worst;
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r) {
  using core::optional_json;
  using core::string_array;
  boost::json::object o{{"result", core::to_string(r.value)},
                        {"from_domain", optional_json(r.from_domain)},
                        {"from_domain_unicode", optional_json(r.from_domain_unicode)},
                        {"from_domains", string_array(r.from_domains)},
                        {"org_domain", optional_json(r.org_domain)},
                        {"org_domain_unicode", optional_json(r.org_domain_unicode)},
                        {"record_domain", optional_json(r.record_domain)}};
  if (r.rec) {
    o["record"] = r.rec->text;
    o["policy"] = r.rec->policy;
    o["subdomain_policy"] = optional_json(r.rec->subdomain_policy);
    o["applied_policy"] = optional_json(r.applied_policy);
    o["pct"] = r.rec->pct;
    o["adkim"] = std::string(1, r.rec->adkim);
    o["aspf"] = std::string(1, r.rec->aspf);
    o["rua"] = string_array(r.rec->rua);
    o["warnings"] = string_array(r.rec->warnings);
  } else {
    for (const char* key : {"record", "policy", "subdomain_policy", "pct", "adkim", "aspf"})
      o[key] = nullptr;
  }
  o["spf_aligned"] = r.spf_aligned;
  o["dkim_aligned"] = r.dkim_aligned;
  if (!r.problem.empty()) o["problem"] = r.problem;
  if (r.bis) {
    o["dmarcbis"] = {{"org_domain", r.bis->org_domain},
                     {"org_domain_unicode", r.bis->org_domain_unicode},
                     {"record_domain", optional_json(r.bis->record_domain)},
                     {"applied_policy", optional_json(r.bis->applied_policy)},
                     {"policy_source", optional_json(r.bis->policy_source)},
                     {"differs", string_array(r.bis->differs)},
                     {"queries", string_array(r.bis->queries)}};
  } else {
    o["dmarcbis"] = nullptr;
  }
  v = std::move(o);
}

namespace {

// A domain's U-label member; absent in reports stored before both forms were shown, and then
// derived from the domain.
std::optional<std::string> unicode_form(const boost::json::object& o, const char* key,
                                        const std::optional<std::string>& domain) {
  if (o.contains(key)) return core::read::optional_field<std::string>(o, key);
  if (domain) return dns::idn(*domain).unicode;
  return std::nullopt;
}

}  // namespace

result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  auto mode = [&](const char* key) {
    const auto m = text(o, key);
    if (m != "r" && m != "s") throw std::invalid_argument(std::string(key) + " is not r or s");
    return m.front();
  };
  result r;
  r.value = core::auth_result_of(text(o, "result"));
  r.from_domain = optional_field<std::string>(o, "from_domain");
  r.from_domains = field<std::vector<std::string>>(o, "from_domains");
  r.org_domain = optional_field<std::string>(o, "org_domain");
  r.from_domain_unicode = unicode_form(o, "from_domain_unicode", r.from_domain);
  r.org_domain_unicode = unicode_form(o, "org_domain_unicode", r.org_domain);
  r.record_domain = optional_field<std::string>(o, "record_domain");
  if (!member(o, "record").is_null()) {
    record rec;
    rec.text = text(o, "record");
    rec.policy = text(o, "policy");
    rec.subdomain_policy = optional_field<std::string>(o, "subdomain_policy");
    rec.pct = field<int>(o, "pct");
    rec.adkim = mode("adkim");
    rec.aspf = mode("aspf");
    rec.rua = field<std::vector<std::string>>(o, "rua");
    rec.warnings = field<std::vector<std::string>>(o, "warnings");
    // The DMARCbis tags are not members of their own: they are read again from the record.
    std::string problem;
    if (auto again = parse(rec.text, problem)) {
      rec.psd = again->psd;
      rec.np = again->np;
      rec.testing = again->testing;
    }
    r.rec = std::move(rec);
    r.applied_policy = optional_field<std::string>(o, "applied_policy");
  }
  r.spf_aligned = field<bool>(o, "spf_aligned");
  r.dkim_aligned = field<bool>(o, "dkim_aligned");
  if (o.contains("problem")) r.problem = text(o, "problem");
  // Absent in reports stored before the DMARCbis walk was shown.
  if (o.contains("dmarcbis") && !member(o, "dmarcbis").is_null()) {
    const auto& b = object_of(member(o, "dmarcbis"));
    bis_result bis;
    bis.org_domain = text(b, "org_domain");
    bis.org_domain_unicode = text(b, "org_domain_unicode");
    bis.record_domain = optional_field<std::string>(b, "record_domain");
    bis.applied_policy = optional_field<std::string>(b, "applied_policy");
    bis.policy_source = optional_field<std::string>(b, "policy_source");
    bis.differs = field<std::vector<std::string>>(b, "differs");
    bis.queries = field<std::vector<std::string>>(b, "queries");
    r.bis = std::move(bis);
  }
  return r;
}

}  // namespace mxlens::analyzers::dmarc
