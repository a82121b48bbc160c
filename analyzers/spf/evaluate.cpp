#include "analyzers/spf/evaluate.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "analyzers/spf/macro.hpp"
#include "analyzers/spf/record.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"

namespace mxlens::analyzers::spf {

namespace {

using core::auth_result;

constexpr std::size_t max_name = 253;          // §7.3: longer expansions lose labels on the left
constexpr std::size_t max_explanation = 1024;  // octets of an exp= text kept for the report

// §5: "SPF verifiers on IPv6 servers" take an IPv4-mapped address (RFC 4291 §2.5.5.2) as IPv4.
std::string client_address(const std::string& ip) {
  in6_addr a{};
  if (inet_pton(AF_INET6, ip.c_str(), &a) != 1) return ip;
  char out[INET6_ADDRSTRLEN];
  if (IN6_IS_ADDR_V4MAPPED(&a)) return inet_ntop(AF_INET, &a.s6_addr[12], out, sizeof out);
  return inet_ntop(AF_INET6, &a, out, sizeof out);
}

// §5.6: whether `ip` is within `network`/`bits`, both of the same family.
bool within(const std::string& ip, const std::string& network, int bits) {
  unsigned char a[16]{}, n[16]{};
  const int family = ip.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, ip.c_str(), a) != 1 || inet_pton(family, network.c_str(), n) != 1)
    return false;
  const int whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a, n, static_cast<std::size_t>(whole)) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a[whole] & mask) == (n[whole] & mask);
}

auth_result qualified(char q) {
  switch (q) {
    case '-': return auth_result::fail;
    case '~': return auth_result::softfail;
    case '?': return auth_result::neutral;
    default: return auth_result::pass;
  }
}

// The domain part of an MX record's presentation form, "PREFERENCE NAME".
std::string mx_name(const std::string& rr) { return rr.substr(rr.find(' ') + 1); }

bool within_domain(const std::string& name, const std::string& domain) {
  const auto n = core::lowercase(name), d = core::lowercase(domain);
  return n == d || (n.size() > d.size() && n.compare(n.size() - d.size(), d.size(), d) == 0 &&
                    n[n.size() - d.size() - 1] == '.');
}

class evaluator {
 public:
  evaluator(const query_fn& query, const host_request& req) : query_(query), req_(req) {
    ip_ = client_address(req.client_ip);
    v6_ = ip_.find(':') != std::string::npos;
    const auto at = req.sender.rfind('@');
    base_.sender = req.sender;
    base_.local_part = req.sender.substr(0, at);
    base_.sender_domain = req.sender.substr(at + 1);
    base_.client_ip = ip_;
    base_.helo = req.helo;
    base_.receiver = req.receiver;
    base_.now = req.now;
  }

  result run() {
    out_.domain = req_.domain;
    // §4.3: a domain that is no multi-label name gives none without any lookup.
    if (!usable_domain(req_.domain)) {
      out_.problem = "no usable domain to check";
      return std::move(out_);
    }
    if (!dns::same_address(ip_, ip_)) {
      out_.value = auth_result::permerror;
      out_.problem = "invalid client address";
      return std::move(out_);
    }
    const auto value = check_host(req_.domain, true, true);
    out_.value = stopped_ ? stopped_->value : value;
    if (stopped_) out_.problem = stopped_->problem;
    out_.lookups = terms_;
    out_.void_lookups = voids_;
    if (out_.value != auth_result::fail) out_.explanation.reset();
    return std::move(out_);
  }

 private:
  struct stop {
    auth_result value;
    std::string problem;
  };

  // Ends the evaluation: a permerror or temperror anywhere is the whole result (§4.6, §5.2, §6.1).
  auth_result halt(auth_result value, std::string problem) {
    if (!stopped_) stopped_ = stop{value, std::move(problem)};
    return stopped_->value;
  }

  dns::answer ask(const std::string& name, dns::rr_type type) { return query_(name, type); }

  // §4.6.4: one more DNS-querying term, false past the 10th.
  bool count_term() {
    if (++terms_ <= max_dns_terms) return true;
    halt(auth_result::permerror,
         "more than " + std::to_string(max_dns_terms) + " DNS-querying terms (RFC 7208 §4.6.4)");
    return false;
  }
  // §4.6.4: a term's query answered NXDOMAIN or with no records, false past the 2nd.
  bool count_void(const dns::answer& a) {
    if (!a.empty() || a.state == dns::status::temperror) return true;
    if (++voids_ <= max_void_lookups) return true;
    halt(auth_result::permerror,
         "more than " + std::to_string(max_void_lookups) + " void lookups (RFC 7208 §4.6.4)");
    return false;
  }

  macro_context context(const std::string& domain) {
    macro_context c = base_;
    c.domain = domain;
    c.validated_name = [this, domain] { return validated_name(domain); };
    return c;
  }

  // §7.3: an expansion used as a name loses labels on its left until it fits in 253 octets.
  std::string expanded_name(const std::string& spec, const std::string& domain) {
    std::string name = expand(spec, context(domain));
    if (name.size() > max_name) {  // in one pass: a record of macros expands to megabytes
      const auto dot = name.find('.', name.size() - max_name - 1);
      name.erase(0, dot == std::string::npos ? name.rfind('.') + 1 : dot + 1);
    }
    return name;
  }

  // §4.8: a term's target name: its domain-spec expanded, or the current domain. Nullopt for a
  // name no query may be made for (an empty or long label, one label, an all-numeric top label).
  // A domain-spec's syntax is checked as written (§7.1), not after expansion, as the RFC 7208
  // test suite has it ("invalid-hello-macro", "require-valid-helo"): for a mechanism, a name a
  // macro made so is one that does not exist, no match, and nothing is asked.
  std::optional<std::string> target(const term& t, const std::string& domain) {
    if (t.domain_spec.empty()) return domain;
    const std::string name = expanded_name(t.domain_spec, domain);
    if (const auto why = target_error(name); !why.empty()) {
      // As written (no macro), such a name is the record's error (the suite allows permerror
      // or no match for an empty label; the issue and §4.6.1 want the record fixed).
      // include: and redirect= reach check_host(), which a malformed name gives "none" (§4.3),
      // a permerror for both (§5.2, §6.1).
      const bool expanded = t.domain_spec.find('%') != std::string::npos;
      if (!expanded || t.kind == term_kind::redirect || t.kind == term_kind::include)
        halt(auth_result::permerror, core::ascii_escaped(t.text) + ": its target \"" +
                                         core::ascii_escaped(name) + "\" is " + why +
                                         ", no domain to evaluate (RFC 7208 §4.3, §5.2, §6.1)");
      return std::nullopt;
    }
    return dns::normalize_name(name);
  }

  dns::rr_type address_type() const { return v6_ ? dns::rr_type::aaaa : dns::rr_type::a; }

  // The address records of `name` against the client, with the term's CIDR lengths; a DNS error
  // is a temperror (§5).
  bool addresses_match(const std::string& name, const term& t, const dns::answer& a) {
    if (a.state == dns::status::temperror) {
      halt(auth_result::temperror, "the addresses of " + name + ": " + a.error);
      return false;
    }
    return std::any_of(a.records.begin(), a.records.end(), [&](const std::string& addr) {
      return within(ip_, addr, v6_ ? t.cidr6 : t.cidr4);
    });
  }

  // §5.3
  bool match_a(const term& t, const std::string& domain) {
    const auto name = target(t, domain);
    if (!name) return false;
    const auto a = ask(*name, address_type());
    if (!count_void(a)) return false;
    return addresses_match(*name, t, a);
  }

  // §5.4; more than 10 MX names is a permerror (§4.6.4).
  bool match_mx(const term& t, const std::string& domain) {
    const auto name = target(t, domain);
    if (!name) return false;
    const auto mx = ask(*name, dns::rr_type::mx);
    if (mx.state == dns::status::temperror) {
      halt(auth_result::temperror, "the MX records of " + *name + ": " + mx.error);
      return false;
    }
    if (!count_void(mx)) return false;
    if (mx.records.size() > max_mx_names) {
      halt(auth_result::permerror, core::ascii_escaped(t.text) + ": " + *name + " has " +
                                       std::to_string(mx.records.size()) +
                                       " MX names, more than 10 (RFC 7208 §4.6.4)");
      return false;
    }
    for (const auto& rr : mx.records) {
      const auto host = mx_name(rr);
      if (host.empty() || host == ".") continue;  // RFC 7505's null MX names no host
      if (addresses_match(host, t, ask(host, address_type()))) return true;
      if (stopped_) return false;
    }
    return false;
  }

  // The client's PTR names, the first 10 of them (§4.6.4); void is said for the ptr term.
  std::vector<std::string> ptr_names(bool term) {
    const auto a = ask(dns::reverse_name(ip_), dns::rr_type::ptr);
    if (term && !count_void(a)) return {};
    if (a.state != dns::status::ok) return {};  // §5.5: a DNS error is no match
    std::vector<std::string> names(
        a.records.begin(),
        a.records.begin() + static_cast<std::ptrdiff_t>(std::min(a.records.size(), max_ptr_names)));
    return names;
  }

  // §5.5: a PTR name is validated when one of its addresses is the client's; errors skip it.
  bool validated(const std::string& name) {
    const auto a = ask(dns::normalize_name(name), address_type());
    return std::any_of(a.records.begin(), a.records.end(),
                       [&](const std::string& addr) { return dns::same_address(addr, ip_); });
  }

  // §5.5
  bool match_ptr(const term& t, const std::string& domain) {
    const auto name = target(t, domain);
    if (!name) return false;
    for (const auto& n : ptr_names(true)) {
      if (within_domain(n, *name) && validated(n)) return true;
    }
    return false;
  }

  // §7.3 %{p}: a validated name in <domain> if there is one, else any validated name, else
  // "unknown"; the first 10 PTR names, as for ptr (§4.6.4).
  std::string validated_name(const std::string& domain) {
    const auto names = ptr_names(false);
    for (const auto& n : names)
      if (within_domain(n, domain) && validated(n)) return n;
    for (const auto& n : names)
      if (!within_domain(n, domain) && validated(n)) return n;
    return "unknown";
  }

  // §5.7
  bool match_exists(const term& t, const std::string& domain) {
    const auto name = target(t, domain);
    if (!name) return false;
    const auto a = ask(*name, dns::rr_type::a);  // always A, whatever the client's family
    if (a.state == dns::status::temperror) {
      halt(auth_result::temperror, "the A records of " + *name + ": " + a.error);
      return false;
    }
    return count_void(a) && !a.records.empty();
  }

  // §5.2: pass matches; fail, softfail and neutral do not; none is a permerror.
  bool match_include(const term& t, const std::string& domain) {
    const auto name = target(t, domain);
    if (!name) return false;
    const auto r = check_host(*name, false, false);
    if (stopped_) return false;
    if (r == auth_result::none) {
      halt(auth_result::permerror,
           core::ascii_escaped(t.text) + ": " + *name + " has no SPF record (RFC 7208 §5.2)");
      return false;
    }
    return r == auth_result::pass;
  }

  bool matches(const term& t, const std::string& domain) {
    switch (t.kind) {
      case term_kind::all: return true;
      case term_kind::include: return match_include(t, domain);
      case term_kind::a: return match_a(t, domain);
      case term_kind::mx: return match_mx(t, domain);
      case term_kind::ptr: return match_ptr(t, domain);
      case term_kind::ip4: return !v6_ && within(ip_, t.network, t.cidr4);
      case term_kind::ip6: return v6_ && within(ip_, t.network, t.cidr6);
      case term_kind::exists: return match_exists(t, domain);
      default: return false;
    }
  }

  // §6.2: the explanation of a fail, from this record's exp=; any trouble leaves none.
  void explain(const record& rec, const std::string& domain) {
    const term* e = rec.exp();
    if (!e) return;
    const std::string name = expanded_name(e->domain_spec, domain);
    if (!target_error(name).empty()) return;
    const auto a = ask(dns::normalize_name(name), dns::rr_type::txt);
    if (a.state != dns::status::ok || a.records.size() != 1) return;
    const auto& text = a.records.front();
    if (!macro_error(text, macro_place::explanation).error.empty()) return;
    out_.explanation = expand(text, context(domain));
    // A TXT of macros expands to megabytes; a person reads the first of it.
    if (out_.explanation->size() > max_explanation) out_.explanation->resize(max_explanation);
  }

  // A term of the domain's own record as the report shows it, from the counts around it.
  void report(std::size_t i, int terms_before, int voids_before, bool matched) {
    auto& r = out_.terms[i];
    r.lookups = terms_ - terms_before;
    r.void_lookups = voids_ - voids_before;
    r.matched = matched;
    if (stopped_ && r.error.empty()) r.error = stopped_->problem;
  }

  // §4.6: the record's terms left to right, then redirect= if none matched (§6.1: wherever it
  // stands). `top`: the domain's own record, whose terms are reported; `explained`: a fail here
  // is the final result, so exp= is read (§6.2: never in an include).
  auth_result evaluate(const record& rec, const std::string& domain, bool top, bool explained) {
    for (std::size_t i = 0; i < rec.terms.size(); ++i) {
      const term& t = rec.terms[i];
      if (!t.mechanism()) continue;
      const int terms_before = terms_, voids_before = voids_;
      const bool matched = (!t.queries_dns() || count_term()) && matches(t, domain);
      if (top) report(i, terms_before, voids_before, matched);
      if (stopped_) return stopped_->value;
      if (!matched) continue;
      const auto value = qualified(t.qualifier);
      if (top) out_.decided_by = t.text;
      if (explained && value == auth_result::fail) explain(rec, domain);
      return value;
    }
    const term* redirect = rec.redirect();
    if (!redirect) return auth_result::neutral;  // §4.7
    const auto i = static_cast<std::size_t>(redirect - rec.terms.data());
    const int terms_before = terms_, voids_before = voids_;
    auto value = auth_result::none;
    if (count_term()) {
      if (const auto name = target(*redirect, domain)) {
        value = check_host(*name, false, explained);
        if (!stopped_ && value == auth_result::none)
          halt(auth_result::permerror, core::ascii_escaped(redirect->text) + ": " + *name +
                                           " has no SPF record (RFC 7208 §6.1)");
      }
    }
    if (top) {
      report(i, terms_before, voids_before, !stopped_);
      if (!stopped_) out_.decided_by = redirect->text;
    }
    return stopped_ ? stopped_->value : value;
  }

  // §4.4, §4.5: the SPF record of `domain`, the record found at <domain> itself when `top`.
  auth_result check_host(const std::string& domain, bool top, bool explained) {
    const auto txt = ask(domain, dns::rr_type::txt);
    if (txt.state == dns::status::temperror)
      return halt(auth_result::temperror,
                  "the SPF record of " + domain + " could not be looked up: " + txt.error);
    // The record an include or redirect reaches is that term's query (§4.6.4).
    if (!top && !count_void(txt)) return stopped_->value;
    std::vector<std::string> spf;
    for (const auto& v : txt.records)
      if (is_spf_record(v)) spf.push_back(v);
    if (top) {
      out_.records = static_cast<int>(spf.size());
      if (spf.empty()) out_.record_error = prefixed_record(txt.records);
    }
    if (spf.empty()) return auth_result::none;
    if (spf.size() > 1) {
      if (top) out_.record_error = "more than one SPF record";
      return halt(auth_result::permerror, domain + " has more than one SPF record (RFC 7208 §4.5)");
    }
    const record rec = parse_record(spf.front());
    if (top) {
      out_.record = spf.front();
      for (const auto& t : rec.terms)
        out_.terms.push_back({t.text, t.position, 0, 0, false, t.error});
    }
    if (!rec.error.empty()) {
      const std::string error = "syntax error: " + rec.error;
      if (top) out_.record_error = error;
      return halt(auth_result::permerror,
                  top ? error : error + " (the SPF record of " + domain + ")");
    }
    return evaluate(rec, domain, top, explained);
  }

  // §4.5: a record that does not begin with "v=spf1" is discarded, whatever precedes it (a byte
  // order mark, say); said, as the result is none.
  static std::string prefixed_record(const std::vector<std::string>& txts) {
    for (const auto& v : txts) {
      const auto at = v.find("v=spf1");
      if (at == 0 || at == std::string::npos) continue;
      if (const auto prefix = v.substr(0, at); !core::non_ascii_item(prefix, ' ').empty())
        return "a TXT record has " + core::ascii_escaped(prefix) +
               " before v=spf1, so it is not an SPF record (RFC 7208 §4.5)";
    }
    return {};
  }

  const query_fn& query_;
  const host_request& req_;
  std::string ip_;
  bool v6_ = false;
  macro_context base_;
  int terms_ = 0;
  int voids_ = 0;
  std::optional<stop> stopped_;
  result out_;
};

}  // namespace

result check_host(const query_fn& query, const host_request& req) {
  return evaluator(query, req).run();
}

}  // namespace mxlens::analyzers::spf
