// SPF (RFC 7208): the result of check_host() for one identity, by our own evaluator
// (evaluate.hpp: record.hpp's parser, macro.hpp's expander, §4.6.4's limits where they are
// defined), on the one resolver. libspf2, which several receiving MTAs use, runs beside it on the
// same record through the same resolver only as a second opinion (libspf2.hpp): its result is
// shown when it differs (docs/libraries.md §2).
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <vector>

#include "analyzers/dns/resolver.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers::spf {

// RFC 7208 §4.6.4.
inline constexpr int max_dns_terms = 10;
inline constexpr int max_void_lookups = 2;

enum class identity { mailfrom, helo };

// One term of the domain's own record, as the evaluation met it.
struct term_result {
  std::string term;          // as written
  std::size_t position = 0;  // its offset in the record
  int lookups = 0;           // DNS-querying terms it cost, its own and those it reached
  int void_lookups = 0;
  bool matched = false;  // a mechanism that matched; a redirect= that was followed
  std::string error;     // its syntax error, or the error that ended the evaluation in it

  bool operator==(const term_result&) const = default;
};

struct result {
  core::auth_result value = core::auth_result::none;  // any but policy
  std::optional<std::string> domain;                  // A-labels (RFC 8616 §4)
  std::optional<std::string> domain_unicode;          // the same in U-labels, for people
  std::optional<std::string> record;
  int lookups = 0;       // DNS-querying terms evaluated (include, a, mx, ptr, exists, redirect)
  int void_lookups = 0;  // of those, answered NXDOMAIN or with no records
  std::optional<std::string> explanation;  // from exp=, on fail
  int records = 0;                         // v=spf1 records at the domain itself
  std::string record_error;  // why the domain's own record is unusable (syntax, several), or
                             // why a TXT record that looks like one is not (bytes before v=spf1)
  std::string problem;       // why a permerror or temperror happened
  std::vector<term_result> terms;         // the domain's own record, term by term
  std::optional<std::string> decided_by;  // the term of that record that gave the result
  // libspf2's result, when it differs (spf.interop)
  std::optional<core::auth_result> libspf2;

  bool operator==(const result&) const = default;
};

struct request {
  std::string client_ip;
  std::string helo;
  std::string mail_from;  // empty for the null sender
  std::string receiver;   // our host name: %{r}
};

// check_host() for the identity: MAIL FROM (postmaster@HELO for the null sender) or HELO.
result check(dns::lookups& dns, const request& req, identity id);

// The report's auth.spf object and its inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r);
result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v);

}  // namespace mxlens::analyzers::spf
