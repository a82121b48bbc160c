#include "core/report.hpp"

#include "core/json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>

namespace mxlens::core {

namespace json = boost::json;

namespace {

const json::object& member(const json::object& o, std::string_view key) {
  static const json::object empty;
  auto* v = o.if_contains(key);
  return v && v->is_object() ? v->as_object() : empty;
}

std::optional<std::string> text(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

bool passed(const json::object& o) { return text(o, "result") == "pass"; }

// Before replies were recorded with the report, a stored report was an accepted delivery.
json::object accepted_disposition() {
  return json::object{{"code", 250},
                      {"enhanced", "2.0.0"},
                      {"text", "delivered"},
                      {"profile", "accept"},
                      {"reason", nullptr}};
}

}  // namespace

std::string with_disposition(std::string analysis_json, const json::object& disposition) {
  const auto close = analysis_json.find_last_not_of(" \t\r\n");
  if (close == std::string::npos || analysis_json[close] != '}' ||
      analysis_json.find('{') == std::string::npos)
    throw std::invalid_argument("an analysis must be a JSON object");
  const auto before = analysis_json.find_last_not_of(" \t\r\n", close - 1);
  const bool empty = before != std::string::npos && analysis_json[before] == '{';
  analysis_json.insert(
      close, (empty ? "" : ",") + std::string("\"disposition\":") + json::serialize(disposition));
  return analysis_json;
}

report_line line_of(const json::object& facts, const json::object& analysis) {
  report_line line;
  line.received_at = text(facts, "received_at").value_or("");
  line.client_ip = text(member(facts, "connection"), "client_ip").value_or("");
  line.mail_from = text(member(facts, "envelope"), "mail_from").value_or("");
  const auto& tls = member(facts, "tls");
  if (auto* used = tls.if_contains("used"); used && used->is_bool() && used->as_bool()) {
    line.tls_version = text(tls, "version").value_or("");
    line.tls_cipher = text(tls, "cipher");
  }
  if (auto* f = tls.if_contains("failed_handshakes"); f && f->is_array())
    line.failed_handshakes = static_cast<std::int64_t>(f->as_array().size());
  auto* score = analysis.if_contains("score");
  line.score_json = score ? json::serialize(*score) : "null";
  auto* disposition = analysis.if_contains("disposition");
  line.disposition_json =
      json::serialize(disposition ? *disposition : json::value(accepted_disposition()));
  const auto& auth = member(analysis, "auth");
  line.spf_pass = passed(member(auth, "spf"));
  line.dmarc_pass = passed(member(auth, "dmarc"));
  if (auto* d = auth.if_contains("dkim"); d && d->is_array())
    for (const auto& s : d->as_array())
      if (s.is_object() && passed(s.as_object())) line.dkim_pass = true;
  return line;
}

json::object to_json(const report_line& line) {
  return json::object{{"delivery", line.number},
                      {"received_at", line.received_at},
                      {"client_ip", line.client_ip},
                      {"mail_from", line.mail_from},
                      {"tls", optional_json(line.tls_version)},
                      {"score", json::parse(line.score_json)},
                      {"disposition", json::parse(line.disposition_json)}};
}

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
  out["disposition"] = accepted_disposition();
  for (const char* key :
       {"disposition", "score", "auth", "checks", "providers", "dns", "analysis"}) {
    if (auto it = analysis.find(key); it != analysis.end()) out[key] = std::move(it->value());
  }
  return out;
}

}  // namespace mxlens::core
