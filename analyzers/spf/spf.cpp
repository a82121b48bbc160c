#include "analyzers/spf/spf.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <deque>
#include <memory>

extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>
}

#include "core/json.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"

namespace mxlens::analyzers::spf {

namespace {

bool is_spf_record(const std::string& txt) {
  if (txt.size() < 6) return false;
  if (core::lowercase(txt.substr(0, 6)) != "v=spf1") return false;
  return txt.size() == 6 || txt[6] == ' ';
}

// RFC 7208 §4.3: a domain that is not a multi-label name gives "none" without any lookup.
bool usable_domain(const std::string& d) {
  if (d.empty() || d.size() > 253 || d.find('.') == std::string::npos) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d[i] == '.') {
      if (label == 0 && i + 1 != d.size()) return false;
      label = 0;
    } else if (++label > 63) {
      return false;
    }
  }
  unsigned char buf[16];
  return inet_pton(AF_INET, d.c_str(), buf) != 1;  // an address literal is not a domain
}

// The state of one check_host() evaluation, reachable from the DNS layer through its hook.
// libspf2 calls the layer synchronously, one evaluation at a time per layer.
struct evaluation {
  dns::lookups* dns = nullptr;
  SPF_server_t* server = nullptr;
  SPF_request_t* request = nullptr;
  int terms = 0;
  int voids = 0;
  bool txt_seen = false;  // the first TXT question is the record itself, not a term
  // Address questions libspf2 asks for the names an "mx" or "ptr" term returned; they belong to
  // that term and are not terms of their own.
  std::deque<std::string> pending_hosts;
  std::string problem;
  std::optional<std::string> record;
  int records = 0;
  std::string record_error;  // the domain's own record, unusable before libspf2 reads it
  std::optional<std::string> explanation;
};

SPF_dns_rr_t* make_rr(SPF_dns_server_t* layer, const char* domain, ns_type type, int herrno) {
  return SPF_dns_rr_new_init(layer, domain, type, 0, herrno);
}

// Never returns NULL: libspf2 aborts on that.
SPF_dns_rr_t* layer_lookup(SPF_dns_server_t* layer, const char* domain, ns_type type, int) {
  auto& ev = *static_cast<evaluation*>(layer->hook);
  const std::string name = dns::normalize_name(domain ? domain : "");
  dns::rr_type qtype;
  switch (type) {
    case ns_t_a: qtype = dns::rr_type::a; break;
    case ns_t_aaaa: qtype = dns::rr_type::aaaa; break;
    case ns_t_txt: qtype = dns::rr_type::txt; break;
    case ns_t_mx: qtype = dns::rr_type::mx; break;
    case ns_t_ptr: qtype = dns::rr_type::ptr; break;
    default: return make_rr(layer, domain, type, NO_DATA);  // nothing else is ever asked
  }
  if (!ev.problem.empty()) return make_rr(layer, domain, type, TRY_AGAIN);

  bool term = true;
  if ((qtype == dns::rr_type::a || qtype == dns::rr_type::aaaa) && !ev.pending_hosts.empty() &&
      ev.pending_hosts.front() == name) {
    ev.pending_hosts.pop_front();
    term = false;
  } else {
    ev.pending_hosts.clear();
    if (qtype == dns::rr_type::txt && !ev.txt_seen) {
      ev.txt_seen = true;
      term = false;
    }
  }
  if (term && ++ev.terms > max_dns_terms) {
    // The 11th term is never asked (§4.6.4: "MUST NOT ... exceed"); the evaluation stops with a
    // temporary error that check() turns into the permerror the RFC requires.
    ev.problem = "more than " + std::to_string(max_dns_terms) + " DNS-querying terms";
    return make_rr(layer, domain, type, TRY_AGAIN);
  }

  const auto& a = ev.dns->query(name, qtype);
  if (term && a.empty() && a.state != dns::status::temperror && ++ev.voids > max_void_lookups) {
    ev.problem = "more than " + std::to_string(max_void_lookups) + " void lookups";
    return make_rr(layer, domain, type, TRY_AGAIN);
  }
  switch (a.state) {
    case dns::status::temperror: return make_rr(layer, domain, type, TRY_AGAIN);
    case dns::status::nxdomain: return make_rr(layer, domain, type, HOST_NOT_FOUND);
    case dns::status::nodata: return make_rr(layer, domain, type, NO_DATA);
    case dns::status::ok: break;
  }

  std::vector<std::string> values;
  if (qtype == dns::rr_type::mx) {
    for (const auto& r : a.records) values.push_back(r.substr(r.find(' ') + 1));
  } else {
    values = a.records;
  }
  if (qtype == dns::rr_type::ptr && values.size() > 10) {
    // §5.5: only the first 10 names are used (libspf2 would make it a permerror).
    values.resize(10);
  }
  const bool own = qtype == dns::rr_type::txt && ev.terms == 0 && !ev.record;
  if (own) {
    std::vector<std::string> spf;
    for (const auto& v : values)
      if (is_spf_record(v)) spf.push_back(v);
    ev.records = static_cast<int>(spf.size());
    if (spf.size() == 1) ev.record = spf.front();
    // §4.5: a record that does not begin with "v=spf1" is discarded, whatever precedes it (a
    // byte order mark, say); said, as the result is none.
    for (std::size_t i = 0; spf.empty() && i < values.size(); ++i) {
      const auto at = values[i].find("v=spf1");
      if (at == 0 || at == std::string::npos) continue;
      if (const auto prefix = values[i].substr(0, at); !core::non_ascii_item(prefix, ' ').empty()) {
        ev.record_error = "a TXT record has " + core::ascii_escaped(prefix) +
                          " before v=spf1, so it is not an SPF record (RFC 7208 §4.5)";
        break;
      }
    }
  }
  if (qtype == dns::rr_type::txt && !(own && ev.records > 1)) {  // several: a permerror anyway
    // The record grammar (§4.6.1, §12) is ASCII: a record with another byte is a syntax error,
    // a permerror (§4.6), in an included or redirected record too. libspf2 would take such a
    // byte into a domain-spec and ask for the name, so the evaluation stops here.
    for (const auto& v : values) {
      const auto item = is_spf_record(v) ? core::non_ascii_item(v, ' ') : std::string();
      if (item.empty()) continue;
      const std::string error = "syntax error: a byte that is not ASCII in " + item;
      if (own) ev.record_error = error;
      ev.problem = own ? error : error + " (the SPF record of " + name + ")";
      return make_rr(layer, domain, type, TRY_AGAIN);
    }
  }
  if (qtype == dns::rr_type::mx || qtype == dns::rr_type::ptr) {
    ev.pending_hosts.assign(values.begin(),
                            values.begin() + std::min<std::size_t>(values.size(), 10));
  }

  SPF_dns_rr_t* rr = make_rr(layer, domain, type, NETDB_SUCCESS);
  int n = 0;
  for (const auto& v : values) {
    if (qtype == dns::rr_type::a) {
      in_addr addr{};
      if (inet_pton(AF_INET, v.c_str(), &addr) != 1) continue;
      if (SPF_dns_rr_buf_realloc(rr, n, sizeof addr) != SPF_E_SUCCESS) break;
      rr->rr[n]->a = addr;
    } else if (qtype == dns::rr_type::aaaa) {
      in6_addr addr{};
      if (inet_pton(AF_INET6, v.c_str(), &addr) != 1) continue;
      if (SPF_dns_rr_buf_realloc(rr, n, sizeof addr) != SPF_E_SUCCESS) break;
      rr->rr[n]->aaaa = addr;
    } else {
      if (SPF_dns_rr_buf_realloc(rr, n, v.size() + 1) != SPF_E_SUCCESS) break;
      std::memcpy(rr->rr[n]->txt, v.c_str(), v.size() + 1);  // txt, mx and ptr share the storage
    }
    ++n;
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

// The exp= lookup (§6.2) is not a term. libspf2 asks for it through this hook, with the name
// already expanded; the text is expanded here word by word, because libspf2's macro compiler
// stops at the first space of an explanation.
SPF_errcode_t layer_get_exp(SPF_server_t* server, const char* domain, char** buf, size_t* buflen) {
  auto& ev = *static_cast<evaluation*>(server->resolver->hook);
  const auto& a = ev.dns->query(dns::normalize_name(domain ? domain : ""), dns::rr_type::txt);
  if (a.state != dns::status::ok || a.records.size() != 1) return SPF_E_NOT_SPF;
  const std::string& text = a.records.front();
  std::string out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(pos, end - pos);
    if (!word.empty()) {
      SPF_macro_t* macro = nullptr;
      SPF_response_t* scratch = SPF_response_new(ev.request);
      SPF_errcode_t err = SPF_record_compile_macro(server, scratch, &macro, word.c_str());
      char* expanded = nullptr;
      size_t expanded_len = 0;
      if (err == SPF_E_SUCCESS && macro) {
        // The data follows the header (spf_internal.h's SPF_macro_data, not installed).
        err = SPF_record_expand_data(
            server, ev.request, scratch,
            reinterpret_cast<SPF_data_t*>(reinterpret_cast<char*>(macro) + sizeof(SPF_macro_t)),
            macro->macro_len, &expanded, &expanded_len);
      }
      if (macro) SPF_macro_free(macro);
      SPF_response_free(scratch);
      if (err != SPF_E_SUCCESS || !expanded) {
        std::free(expanded);
        return SPF_E_INVALID_CHAR;
      }
      out += expanded;
      std::free(expanded);
    }
    if (end < text.size()) out += ' ';
    pos = end + 1;
  }
  ev.explanation = out;
  if (*buflen < out.size() + 1) {
    char* grown = static_cast<char*>(std::realloc(*buf, out.size() + 1));
    if (!grown) return SPF_E_NO_MEMORY;
    *buf = grown;
    *buflen = out.size() + 1;
  }
  std::memcpy(*buf, out.c_str(), out.size() + 1);
  return SPF_E_SUCCESS;
}

core::auth_result result_name(SPF_result_t r) {
  using core::auth_result;
  switch (r) {
    case SPF_RESULT_PASS: return auth_result::pass;
    case SPF_RESULT_FAIL: return auth_result::fail;
    case SPF_RESULT_SOFTFAIL: return auth_result::softfail;
    case SPF_RESULT_NEUTRAL: return auth_result::neutral;
    case SPF_RESULT_NONE: return auth_result::none;
    case SPF_RESULT_TEMPERROR: return auth_result::temperror;
    case SPF_RESULT_PERMERROR:
    case SPF_RESULT_INVALID:  // a record that does not compile (§4.6)
      return auth_result::permerror;
  }
  return auth_result::permerror;
}

struct server_deleter {
  void operator()(SPF_server_t* s) const { SPF_server_free(s); }
};
struct request_deleter {
  void operator()(SPF_request_t* r) const { SPF_request_free(r); }
};
struct response_deleter {
  void operator()(SPF_response_t* r) const { SPF_response_free(r); }
};

}  // namespace

result check(dns::lookups& dns, const request& req, identity id) {
  result out;
  std::string domain;
  std::string sender;
  if (id == identity::helo || req.mail_from.empty()) {
    // The HELO identity, and the null sender (§2.4), are checked as postmaster@HELO.
    domain = dns::normalize_name(req.helo);
    sender = "postmaster@" + domain;
  } else {
    auto at = req.mail_from.rfind('@');
    domain = dns::normalize_name(at == std::string::npos ? "" : req.mail_from.substr(at + 1));
    sender = req.mail_from;
  }
  out.domain = domain.empty() ? std::nullopt : std::optional(domain);
  if (!usable_domain(domain)) {
    out.problem = "no usable domain to check";
    return out;
  }

  evaluation ev;
  ev.dns = &dns;
  SPF_dns_server_t layer{};
  layer.lookup = layer_lookup;
  layer.get_exp = layer_get_exp;
  layer.name = "mxlens";
  layer.hook = &ev;
  std::unique_ptr<SPF_server_t, server_deleter> server(SPF_server_new_dns(&layer, 0));
  if (!server) {
    out.value = core::auth_result::temperror;
    out.problem = "libspf2 could not start";
    return out;
  }
  ev.server = server.get();
  SPF_server_set_rec_dom(server.get(), req.receiver.empty() ? "mxlens" : req.receiver.c_str());
  std::unique_ptr<SPF_request_t, request_deleter> request(SPF_request_new(server.get()));
  ev.request = request.get();
  const bool v4 = req.client_ip.find(':') == std::string::npos;
  SPF_errcode_t err = v4 ? SPF_request_set_ipv4_str(request.get(), req.client_ip.c_str())
                         : SPF_request_set_ipv6_str(request.get(), req.client_ip.c_str());
  if (err != SPF_E_SUCCESS) {
    out.value = core::auth_result::permerror;
    out.problem = "invalid client address";
    return out;
  }
  const std::string helo = dns::normalize_name(req.helo);
  SPF_request_set_helo_dom(request.get(), helo.c_str());
  SPF_request_set_env_from(request.get(), sender.c_str());

  // SPF_request_query_mailfrom() without its "localhost always passes" shortcut, which RFC 7208
  // does not have: the tail of that function, verbatim in behaviour.
  std::unique_ptr<SPF_response_t, response_deleter> response(SPF_response_new(request.get()));
  request->cur_dom = request->env_from_dp;
  SPF_record_t* record = nullptr;
  err = SPF_server_get_record(server.get(), request.get(), response.get(), &record);
  if (err == SPF_E_SUCCESS && record) {
    response->spf_record_exp = record;
    SPF_record_interpret(record, request.get(), response.get(), 0);
    SPF_record_free(record);
  } else if (record) {
    SPF_record_free(record);
  }

  out.value = result_name(SPF_response_result(response.get()));
  if (err == SPF_E_DNS_ERROR) {
    out.value =
        core::auth_result::temperror;  // §4.4: the record lookup failed (libspf2 says permerror)
  } else if (err != SPF_E_SUCCESS && out.value == core::auth_result::none && err != SPF_E_NOT_SPF) {
    out.value = core::auth_result::permerror;  // no result was set: a syntax error or several
                                               // records (§4.5)
  }
  out.lookups = std::min(ev.terms, max_dns_terms + 1);
  out.void_lookups = ev.voids;
  out.record = ev.record;
  out.records = ev.records;
  out.record_error = ev.record_error;
  if (err != SPF_E_SUCCESS && err != SPF_E_DNS_ERROR && ev.records > 0) {
    // The domain's own record is unusable: several of them, or one that does not compile.
    out.record_error = ev.records > 1 ? "more than one SPF record" : "syntax error";
    for (int i = 0; ev.records == 1 && i < SPF_response_messages(response.get()); ++i) {
      SPF_error_t* e = SPF_response_message(response.get(), i);
      if (e && SPF_error_errorp(e) && SPF_error_message(e)) {
        out.record_error = std::string("syntax error: ") + SPF_error_message(e);
        break;
      }
    }
    out.value = core::auth_result::permerror;
  }
  if (!ev.problem.empty()) {
    out.value = core::auth_result::permerror;
    out.problem = ev.problem;
  } else if (out.value == core::auth_result::permerror ||
             out.value == core::auth_result::temperror) {
    out.problem = SPF_strerror(err != SPF_E_SUCCESS ? err : SPF_response_errcode(response.get()));
  }
  if (out.value == core::auth_result::fail) out.explanation = ev.explanation;
  return out;
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r) {
  using core::optional_json;
  boost::json::object o{{"result", core::to_string(r.value)},
                        {"domain", optional_json(r.domain)},
                        {"record", optional_json(r.record)},
                        {"lookups", r.lookups},
                        {"void_lookups", r.void_lookups},
                        {"explanation", optional_json(r.explanation)},
                        {"records", r.records}};
  if (!r.record_error.empty()) o["record_error"] = r.record_error;
  if (!r.problem.empty()) o["problem"] = r.problem;
  v = std::move(o);
}

result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  result r;
  r.value = core::auth_result_of(text(o, "result"));
  r.domain = optional_field<std::string>(o, "domain");
  r.record = optional_field<std::string>(o, "record");
  r.lookups = field<int>(o, "lookups");
  r.void_lookups = field<int>(o, "void_lookups");
  r.explanation = optional_field<std::string>(o, "explanation");
  r.records = field<int>(o, "records");
  if (o.contains("record_error")) r.record_error = text(o, "record_error");
  if (o.contains("problem")) r.problem = text(o, "problem");
  return r;
}

}  // namespace mxlens::analyzers::spf
