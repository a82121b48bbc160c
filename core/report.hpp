// A delivery's report (report.schema.json): the facts the receiver recorded merged with the
// analysis stored after them.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/types.hpp"

namespace mxlens::core {

// The header block a report carries: {"text": the message's header section (up to the empty
// line that ends it) cut at the last line end within max_header_block octets, "truncated": whether
// it was cut, "size": the whole section's octets}. Its bytes are the message's.
inline constexpr std::size_t max_header_block = 64u << 10;
boost::json::object report_headers(std::string_view raw);

// What storage keeps of a delivery beside its raw bytes: its JSON form, and the message's header
// section (report_headers), which the report shows without the raw message being read.
boost::json::value delivery_facts_json(const delivery& d);

boost::json::object merge_report(const std::string& facts_json, boost::json::object analysis);

// A stored "score" object in today's form (core::score): a score stored before reports could be
// unscored reads as its inverse says; one whose analysis listed `errors` is unscored, because that
// analysis failed. Anything that is not a score is returned as it is.
boost::json::value current_score(const boost::json::value& stored,
                                 const boost::json::value* errors = nullptr);

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
