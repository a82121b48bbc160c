// SPF (RFC 7208) on libspf2. Every lookup goes through our resolver by a custom DNS layer, which
// also enforces §4.6.4 itself: libspf2 lets an 11th DNS-querying term run, restarts its count in
// each include and has no void-lookup limit at all (docs/libraries.md §2).
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "analyzers/dns/resolver.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers::spf {

// RFC 7208 §4.6.4.
inline constexpr int max_dns_terms = 10;
inline constexpr int max_void_lookups = 2;

enum class identity { mailfrom, helo };

struct result {
  core::auth_result value = core::auth_result::none;  // any but policy
  std::optional<std::string> domain;
  std::optional<std::string> record;
  int lookups = 0;       // DNS-querying terms evaluated (include, a, mx, ptr, exists, redirect)
  int void_lookups = 0;  // of those, answered NXDOMAIN or with no records
  std::optional<std::string> explanation;  // from exp=, on fail
  int records = 0;                         // v=spf1 records at the domain itself
  std::string record_error;  // why the domain's own record is unusable (syntax, several), or
                             // why a TXT record that looks like one is not (bytes before v=spf1)
  std::string problem;       // why a permerror or temperror happened

  bool operator==(const result&) const = default;
};

struct request {
  std::string client_ip;
  std::string helo;
  std::string mail_from;  // empty for the null sender
  std::string receiver;   // our host name, for the libspf2 comments
};

// check_host() for the identity: MAIL FROM (postmaster@HELO for the null sender) or HELO.
result check(dns::lookups& dns, const request& req, identity id);

// The report's auth.spf object and its inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r);
result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v);

}  // namespace mxlens::analyzers::spf
