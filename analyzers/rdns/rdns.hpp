// Reverse DNS of the client (RFC 8601 §3 "iprev"): its PTR names, each confirmed forward when
// an A/AAAA of that name is the client address again; and what the EHLO name resolves to.
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <vector>

#include "analyzers/dns/resolver.hpp"

namespace mxlens::analyzers::rdns {

// How many PTR names are followed forward (RFC 8601 §3 leaves it to the receiver; 10 as SPF).
inline constexpr std::size_t max_ptr_names = 10;

struct result {
  std::string iprev = "temperror";  // pass fail temperror permerror (RFC 8601 §2.7.3)
  std::vector<std::string> ptr;
  std::vector<std::string> confirmed;  // PTR names whose addresses include the client's
  std::optional<bool> fcrdns;          // null when the PTR question failed temporarily
  // The EHLO name: "match" (resolves to the client), "mismatch" (resolves elsewhere),
  // "none" (does not resolve), "literal" (an address literal), "temperror".
  std::string helo_dns = "none";
  std::vector<std::string> helo_addresses;
};

result check(dns::lookups& dns, const std::string& client_ip, const std::string& helo);

// The fields of the report's `connection` object this adds.
void add_to_connection(const result& r, boost::json::object& connection);

}  // namespace mxlens::analyzers::rdns
