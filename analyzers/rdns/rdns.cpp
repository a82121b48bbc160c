#include "analyzers/rdns/rdns.hpp"

#include "core/json.hpp"

namespace mxlens::analyzers::rdns {

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
      out.iprev = "temperror";
    } else if (ptr.empty()) {
      out.iprev = "fail";
      out.fcrdns = false;
    } else {
      bool temporary = false;
      for (std::size_t i = 0; i < out.ptr.size() && i < max_ptr_names; ++i) {
        if (resolves_to(dns, out.ptr[i], client_ip, nullptr, temporary))
          out.confirmed.push_back(out.ptr[i]);
      }
      out.fcrdns = !out.confirmed.empty();
      out.iprev = *out.fcrdns ? "pass" : temporary ? "temperror" : "fail";
      if (out.iprev == "temperror") out.fcrdns.reset();
    }
  } else {
    out.iprev = "permerror";
  }

  std::string name = dns::normalize_name(helo);
  if (!name.empty() && name.front() == '[') {
    out.helo_dns = "literal";
  } else if (name.empty() || name.find('.') == std::string::npos) {
    out.helo_dns = "none";
  } else {
    bool temporary = false;
    bool match = resolves_to(dns, name, client_ip, &out.helo_addresses, temporary);
    out.helo_dns = match                        ? "match"
                   : temporary                  ? "temperror"
                   : out.helo_addresses.empty() ? "none"
                                                : "mismatch";
  }
  return out;
}

void add_to_connection(const result& r, boost::json::object& connection) {
  connection["ptr"] = core::string_array(r.ptr);
  connection["ptr_confirmed"] = core::string_array(r.confirmed);
  connection["fcrdns"] = core::optional_json(r.fcrdns);
  connection["iprev"] = r.iprev;
  connection["helo_dns"] = r.helo_dns;
  connection["helo_addresses"] = core::string_array(r.helo_addresses);
}

}  // namespace mxlens::analyzers::rdns
