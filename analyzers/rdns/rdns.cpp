#include "analyzers/rdns/rdns.hpp"

#include <stdexcept>

#include "analyzers/dns/idn.hpp"
#include "core/json.hpp"
#include "core/tokens.hpp"

namespace mxlens::analyzers::rdns {

using core::auth_result;

namespace {

bool is_v6(const std::string& ip) { return ip.find(':') != std::string::npos; }

bool resolves_to(dns::lookups& dns, const std::string& name, const std::string& ip,
                 std::vector<std::string>* addresses, bool& temporary) {
  const auto& a = dns.query(name, is_v6(ip) ? dns::rr_type::aaaa : dns::rr_type::a);
  if (a.state == dns::status::temperror) temporary = true;
  bool match = false;
  for (const auto& r : a.records) {
    if (addresses) addresses->push_back(r);
    if (dns::same_address(r, ip)) match = true;
  }
  return match;
}

}  // namespace

result check(dns::lookups& dns, const std::string& client_ip, const std::string& helo) {
  result out;
  const auto rev = dns::reverse_name(client_ip);
  if (!rev.empty()) {
    const auto& ptr = dns.query(rev, dns::rr_type::ptr);
    out.ptr = ptr.records;
    if (ptr.state == dns::status::temperror) {
      out.iprev = auth_result::temperror;
    } else if (ptr.empty()) {
      out.iprev = auth_result::fail;
      out.fcrdns = false;
    } else {
      bool temporary = false;
      for (std::size_t i = 0; i < out.ptr.size() && i < max_ptr_names; ++i) {
        if (resolves_to(dns, out.ptr[i], client_ip, nullptr, temporary))
          out.confirmed.push_back(out.ptr[i]);
      }
      out.fcrdns = !out.confirmed.empty();
      out.iprev = *out.fcrdns ? auth_result::pass
                  : temporary ? auth_result::temperror
                              : auth_result::fail;
      if (out.iprev == auth_result::temperror) out.fcrdns.reset();
    }
  } else {
    out.iprev = auth_result::permerror;
  }

  // RFC 8616 §4: the name is asked in A-labels; an invalid IDN is no name to ask.
  const auto forms = dns::idn(helo);
  const std::string& name = forms.ascii;
  if (!name.empty() && name.front() == '[') {
    out.helo_dns = helo_match::literal;
  } else if (name.empty() || name.find('.') == std::string::npos || !forms.valid()) {
    out.helo_dns = helo_match::none;
  } else {
    bool temporary = false;
    bool match = resolves_to(dns, name, client_ip, &out.helo_addresses, temporary);
    out.helo_dns = match                        ? helo_match::match
                   : temporary                  ? helo_match::temperror
                   : out.helo_addresses.empty() ? helo_match::none
                                                : helo_match::mismatch;
  }
  return out;
}

namespace {
constexpr core::token_table<helo_match, 5> helo_tokens{{{{helo_match::match, "match"},
                                                         {helo_match::mismatch, "mismatch"},
                                                         {helo_match::none, "none"},
                                                         {helo_match::literal, "literal"},
                                                         {helo_match::temperror, "temperror"}}},
                                                       "a helo_dns value"};
}  // namespace

std::string_view to_string(helo_match m) { return helo_tokens.token(m); }
helo_match helo_match_of(std::string_view token) { return helo_tokens.value(token); }

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r) {
  v = boost::json::object{{"ptr", core::string_array(r.ptr)},
                          {"ptr_confirmed", core::string_array(r.confirmed)},
                          {"fcrdns", core::optional_json(r.fcrdns)},
                          {"iprev", core::to_string(r.iprev)},
                          {"helo_dns", to_string(r.helo_dns)},
                          {"helo_addresses", core::string_array(r.helo_addresses)}};
}

result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  result r;
  r.ptr = field<std::vector<std::string>>(o, "ptr");
  r.confirmed = field<std::vector<std::string>>(o, "ptr_confirmed");
  r.fcrdns = optional_field<bool>(o, "fcrdns");
  r.iprev = core::auth_result_of(text(o, "iprev"));
  r.helo_dns = helo_match_of(text(o, "helo_dns"));
  r.helo_addresses = field<std::vector<std::string>>(o, "helo_addresses");
  return r;
}

}  // namespace mxlens::analyzers::rdns
