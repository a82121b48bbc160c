#include "core/report.hpp"

#include <boost/json/parse.hpp>

namespace mxlens::core {

namespace json = boost::json;

json::object merge_report(const std::string& facts_json, json::object analysis) {
  json::object facts = json::parse(facts_json).as_object();
  json::object out;
  out["schema"] = "mxlens.report/1";
  for (auto& [k, v] : facts) out[k] = std::move(v);
  auto& connection = out["connection"].as_object();
  if (auto it = analysis.find("connection"); it != analysis.end() && it->value().is_object()) {
    for (auto& [k, v] : it->value().as_object()) connection[k] = std::move(v);
  }
  if (!connection.contains("ptr")) connection["ptr"] = json::array{};
  if (!connection.contains("fcrdns")) connection["fcrdns"] = nullptr;
  // Stored before replies were recorded with the report: it was accepted.
  out["disposition"] = json::object{{"code", 250}, {"enhanced", "2.0.0"}, {"text", "delivered"},
                                    {"profile", "accept"}, {"reason", nullptr}};
  for (const char* key : {"disposition", "score", "auth", "checks", "providers", "dns", "analysis"}) {
    if (auto it = analysis.find(key); it != analysis.end()) out[key] = std::move(it->value());
  }
  return out;
}

}  // namespace mxlens::core
