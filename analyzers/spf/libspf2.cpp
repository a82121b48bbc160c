#include "analyzers/spf/libspf2.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <memory>

extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>
}

namespace mxlens::analyzers::spf {

namespace {

SPF_dns_rr_t* make_rr(SPF_dns_server_t* layer, const char* domain, ns_type type, int herrno) {
  return SPF_dns_rr_new_init(layer, domain, type, 0, herrno);
}

// libspf2 takes a byte that is not ASCII inside a domain-spec into the name it asks for
// (docs/libraries.md §2); such a name is answered as nonexistent without being asked.
bool askable(const std::string& name) {
  return std::all_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
}

// The layer between libspf2 and our resolver: answers only, no limits of ours (libspf2's are
// what is being asked for). Never returns NULL: libspf2 aborts on that.
// What the layer's hook points at: the evaluation's lookups, and the questions asked so far.
struct layer_state {
  dns::lookups& dns;
  int questions = 0;
};

SPF_dns_rr_t* layer_lookup(SPF_dns_server_t* layer, const char* domain, ns_type type, int) {
  auto& state = *static_cast<layer_state*>(layer->hook);
  auto& dns = state.dns;
  // Past the bound every question fails at once, and libspf2 stops at the first (a DNS error
  // ends its evaluation as a temperror).
  if (++state.questions > max_libspf2_questions) return make_rr(layer, domain, type, TRY_AGAIN);
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
  if (!askable(name)) return make_rr(layer, domain, type, HOST_NOT_FOUND);
  const auto& a = dns.query(name, qtype);
  switch (a.state) {
    case dns::status::temperror: return make_rr(layer, domain, type, TRY_AGAIN);
    case dns::status::nxdomain: return make_rr(layer, domain, type, HOST_NOT_FOUND);
    case dns::status::nodata: return make_rr(layer, domain, type, NO_DATA);
    case dns::status::ok: break;
  }
  SPF_dns_rr_t* rr = make_rr(layer, domain, type, NETDB_SUCCESS);
  int n = 0;
  for (const auto& record : a.records) {
    const std::string v = qtype == dns::rr_type::mx ? record.substr(record.find(' ') + 1) : record;
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

// The explanation is not asked of libspf2: only its result is.
SPF_errcode_t layer_get_exp(SPF_server_t*, const char*, char**, size_t*) { return SPF_E_NOT_SPF; }

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
    case SPF_RESULT_INVALID:  // a record that does not compile
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

std::optional<core::auth_result> libspf2_check(dns::lookups& dns, const request& req,
                                               const std::string& sender) {
  layer_state state{dns};
  SPF_dns_server_t layer{};
  layer.lookup = layer_lookup;
  layer.get_exp = layer_get_exp;
  layer.name = "mxlens";
  layer.hook = &state;
  std::unique_ptr<SPF_server_t, server_deleter> server(SPF_server_new_dns(&layer, 0));
  if (!server) return core::auth_result::temperror;
  SPF_server_set_rec_dom(server.get(), req.receiver.empty() ? "mxlens" : req.receiver.c_str());
  std::unique_ptr<SPF_request_t, request_deleter> request(SPF_request_new(server.get()));
  const bool v4 = req.client_ip.find(':') == std::string::npos;
  SPF_errcode_t err = v4 ? SPF_request_set_ipv4_str(request.get(), req.client_ip.c_str())
                         : SPF_request_set_ipv6_str(request.get(), req.client_ip.c_str());
  if (err != SPF_E_SUCCESS) return core::auth_result::permerror;
  const std::string helo = dns::normalize_name(req.helo);
  SPF_request_set_helo_dom(request.get(), helo.c_str());
  SPF_request_set_env_from(request.get(), sender.c_str());

  // SPF_request_query_mailfrom() without the localhost shortcut: the tail of that function,
  // verbatim in behaviour, for the sender's domain (the HELO's, for the HELO identity).
  std::unique_ptr<SPF_response_t, response_deleter> response(SPF_response_new(request.get()));
  request->cur_dom = request->env_from_dp;
  SPF_record_t* record = nullptr;
  err = SPF_server_get_record(server.get(), request.get(), response.get(), &record);
  if (err == SPF_E_SUCCESS && record) {
    response->spf_record_exp = record;
    SPF_record_interpret(record, request.get(), response.get(), 0);
  }
  if (record) SPF_record_free(record);
  if (state.questions > max_libspf2_questions) return std::nullopt;
  const auto value = result_name(SPF_response_result(response.get()));
  // No result set and an error: a record that does not compile, or several (§4.5).
  if (err != SPF_E_SUCCESS && err != SPF_E_NOT_SPF && value == core::auth_result::none)
    return core::auth_result::permerror;
  return value;
}

}  // namespace mxlens::analyzers::spf
