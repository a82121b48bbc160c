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
std::string with_disposition(std::string analysis_json, const boost::json::object& disposition);

// The listing line of a delivery, from its facts (delivery_facts_json) and its analysis (with
// its disposition); the delivery number is left for the caller.
report_line line_of(const boost::json::object& facts, const boost::json::object& analysis);

// The line as the API lists it: delivery, received_at, client_ip, mail_from, tls, score,
// disposition.
boost::json::object to_json(const report_line& line);

}  // namespace mxlens::core
