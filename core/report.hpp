// A delivery's report (report.schema.json): the facts the receiver recorded merged with the
// analysis stored after them.
#pragma once

#include <boost/json/object.hpp>
#include <string>

namespace mxlens::core {

boost::json::object merge_report(const std::string& facts_json, boost::json::object analysis);

}  // namespace mxlens::core
