#include "app/report.hpp"

#include <boost/json/parse.hpp>

#include "analyzers/worker/worker.hpp"
#include "core/report.hpp"

namespace mxlens::app {

namespace json = boost::json;

json::object delivery_report(const std::string& facts_json,
                             const std::optional<std::string>& analysis_json) {
  return core::merge_report(facts_json, analysis_json ? json::parse(*analysis_json).as_object()
                                                      : analyzers::worker::failed_analysis(
                                                            "the delivery has not been analyzed"));
}

}  // namespace mxlens::app
