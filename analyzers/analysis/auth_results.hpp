// The Authentication-Results header field (RFC 8601) this receiver would add, built from the
// results of every method by one formatter.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/types.hpp"

namespace mxlens::analyzers {

struct method_result {
  std::string method;  // iprev spf dkim dmarc
  core::auth_result result = core::auth_result::none;
  std::string reason;                                           // optional
  std::vector<std::pair<std::string, std::string>> properties;  // "smtp.mailfrom" -> value
  std::string comment;                                          // optional
};

// "authserv-id; method=result reason=... ptype.prop=value (comment); ..." with values quoted
// where RFC 8601 §2.2 requires it. An empty list gives "authserv-id; none".
std::string authentication_results(const std::string& authserv_id,
                                   const std::vector<method_result>& results);

}  // namespace mxlens::analyzers
