// A delivery's report (report.schema.json): the facts the receiver recorded merged with the
// analysis stored after them.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "core/types.hpp"

namespace mxlens::core {

boost::json::object merge_report(const std::string& facts_json, boost::json::object analysis);

// The JSON text of an analysis (an object without a disposition) with `disposition` added as its
// last member, without parsing the rest.
std::string with_disposition(std::string analysis_json, const disposition& d);

// The listing line of a delivery (its number included), from its recorded facts, what the server
// read of its analysis, and what it answered.
report_line line_of(const delivery& d, const analysis_summary& analysis, const disposition& answer);

// The line as the API lists it: delivery, received_at, client_ip, mail_from, tls, score,
// disposition.
boost::json::object to_json(const report_line& line);

}  // namespace mxlens::core
