// Reverse DNS of the client (RFC 8601 §3 "iprev"): its PTR names, each confirmed forward when
// an A/AAAA of that name is the client address again; and what the EHLO name resolves to.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/dns/resolver.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers::rdns {

// How many PTR names are followed forward (RFC 8601 §3 leaves it to the receiver; 10 as SPF).
inline constexpr std::size_t max_ptr_names = 10;

// What the EHLO name resolves to: the client's address ("match"), only others ("mismatch"),
// nothing ("none"); or it is an address literal ("literal"), or the lookup failed ("temperror").
enum class helo_match { match, mismatch, none, literal, temperror };
std::string_view to_string(helo_match m);
helo_match helo_match_of(std::string_view token);  // throws std::invalid_argument

struct result {
  core::auth_result iprev =
      core::auth_result::temperror;  // pass fail temperror permerror (RFC 8601 §2.7.3)
  std::vector<std::string> ptr;
  std::vector<std::string> confirmed;  // PTR names whose addresses include the client's
  std::optional<bool> fcrdns;          // null when the PTR question failed temporarily
  helo_match helo_dns = helo_match::none;
  std::vector<std::string> helo_addresses;

  bool operator==(const result&) const = default;
};

result check(dns::lookups& dns, const std::string& client_ip, const std::string& helo);

// The fields this adds to the report's `connection` object (ptr, ptr_confirmed, fcrdns, iprev,
// helo_dns, helo_addresses), and the inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r);
result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v);

}  // namespace mxlens::analyzers::rdns
