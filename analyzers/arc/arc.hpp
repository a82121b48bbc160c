// ARC chain validation (RFC 8617 §5.2), on OpenSSL with keys fetched by our resolver. Debian's
// libopendkim has no ARC support and OpenARC is not packaged, so the canonicalization (RFC 6376
// §3.4), the header selection (§5.4.2) and the signature checks are done here.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/dns/resolver.hpp"

namespace mxlens::analyzers::arc {

// RFC 8617 §4.2.1: instance numbers run from 1 to 50.
inline constexpr int max_instances = 50;

// What one ARC set says and whether its two signatures validate.
struct instance {
  int number = 0;
  std::string cv;  // the ARC-Seal's cv=
  std::string seal_domain, seal_selector;
  std::string ams_domain, ams_selector;
  std::vector<std::string> ams_headers;  // the AMS's h=
  std::optional<bool> ams_valid;         // nullopt: not checked
  std::optional<bool> seal_valid;
  std::string authserv_id;  // the ARC-Authentication-Results' authserv-id
  std::string results;      // and its results, unfolded, bounded
  std::string problem;      // why a signature of this set failed

  bool operator==(const instance&) const = default;
};

struct result {
  std::string cv = "none";  // none pass fail (RFC 8617 §4.4)
  std::optional<std::string> reason;
  std::optional<int> failed_instance;  // the set that broke the chain
  bool temporary = false;              // a key could not be fetched for now (DNS)
  int instances = 0;
  std::optional<int> oldest_pass;  // §5.2 step 5: 0 when every AMS holds, else the set after the
                                   // newest AMS that does not
  std::vector<instance> chain;     // oldest first

  bool operator==(const result&) const = default;
};

// Validates the chain of the raw message (CRLF line ends, dot-stuffing removed).
result validate(dns::lookups& dns, std::string_view raw);

// The DKIM canonicalizations (RFC 6376 §3.4), for the tests and for ARC.
std::string relaxed_header(std::string_view name, std::string_view raw_value);
std::string canonical_body(std::string_view body, bool relaxed);

// The report's auth.arc object, and its inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r);
result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v);

}  // namespace mxlens::analyzers::arc
