// One delivery's analysis: reverse DNS, SPF (MAIL FROM and HELO), DKIM, DMARC and the
// Authentication-Results header, all through one resolver. Runs inside a worker process (see
// analyzers/worker) or in `mxlens analyze`; an analyzer that fails adds to `analysis.errors` and
// the others still run.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "analyzers/dns/resolver.hpp"

namespace mxlens::analyzers {

struct analysis_input {
  std::string client_ip;
  std::string helo;
  std::string mail_from;  // empty for the null sender
  std::string receiver;   // our host name, the authserv-id
  std::string raw;        // the message as received
  // The recorded session in report form (connection, tls, envelope, data); empty when the
  // message is analyzed from a file without one.
  boost::json::object session;
  std::int64_t received_at = 0;  // Unix milliseconds
  bool bulk = false;             // judge as a bulk sender (unsubscribe checks fail instead of warn)
};

// {"connection": {ptr, fcrdns, ...}, "auth": {...}, "checks": [...], "score": {...},
//  "providers": {...}, "dns": [...], "analysis": {duration_ms, errors}}
boost::json::object analyze(const analysis_input& in, dns::resolver& resolver);

boost::json::object analysis_input_json(const analysis_input& in);  // without the raw message
analysis_input analysis_input_from_json(const boost::json::object& o);

}  // namespace mxlens::analyzers
