#include "app/report.hpp"

#include <boost/json/parse.hpp>

#include "analyzers/analysis/analysis.hpp"
#include "core/json.hpp"
#include "core/report.hpp"
#include "core/text.hpp"

namespace mxlens::app {

namespace json = boost::json;

json::object delivery_report(const std::string& facts_json,
                             const std::optional<std::string>& analysis_json) {
  if (analysis_json)
    return core::merge_report(facts_json, core::parse_stored(*analysis_json).as_object());
  const auto none = analyzers::failed_analysis("the delivery has not been analyzed");
  return core::merge_report(facts_json, core::to_json(none).as_object());
}

}  // namespace mxlens::app
