// A delivery's report: the facts the receiver recorded merged with the analysis stored after
// them, in the shape of report.schema.json (checks, score and provider verdicts come later).
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>

namespace mxlens::app {

boost::json::object delivery_report(const std::string& facts_json,
                                    const std::optional<std::string>& analysis_json);

// A readable summary: the score, then the checks grouped by category with failures first and
// the fix for each; ANSI colour when `colour`.
std::string report_text(const boost::json::object& report, bool colour);

}  // namespace mxlens::app
