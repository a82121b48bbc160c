#include "core/report.hpp"

#include "core/json.hpp"
#include "core/text.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>

namespace mxlens::core {

namespace json = boost::json;

namespace {

// Before replies were recorded with the report, a stored report was an accepted delivery.
json::object accepted_disposition() {
  return json::object{{"code", 250},
                      {"enhanced", "2.0.0"},
                      {"text", "delivered"},
                      {"profile", "accept"},
                      {"reason", nullptr}};
}

}  // namespace

json::object report_headers(std::string_view raw) {
  // RFC 5322 §2.1: the header section ends at the first empty line (bare LF tolerated, as the
  // analyzers read it).
  auto end = std::min(raw.find("\r\n\r\n"), raw.find("\n\n"));
  if (raw.starts_with("\r\n") || raw.starts_with("\n")) end = 0;
  const auto section = raw.substr(0, end);
  auto text = section.substr(0, max_header_block);
  const bool truncated = text.size() < section.size();
  if (truncated)
    if (auto nl = text.rfind('\n'); nl != std::string_view::npos) text = text.substr(0, nl + 1);
  return json::object{{"text", json::string(text)},
                      {"truncated", truncated},
                      {"size", static_cast<std::uint64_t>(section.size())}};
}

json::value delivery_facts_json(const delivery& d) {
  auto facts = to_json(d);
  facts.as_object()["headers"] = report_headers(d.raw);
  return facts;
}

json::value current_score(const json::value& stored, const json::value* errors) {
  score s;
  try {
    s = from_json<score>(stored);
  } catch (const std::exception&) {
    return stored;
  }
  // A stored score of the first form: its value did not know its analysis had failed.
  const bool first_form = !stored.as_object().contains("unscored");
  if ((s.value || first_form) && errors && errors->is_array() && !errors->as_array().empty()) {
    const auto& first = errors->as_array().front();
    s.value.reset();
    s.unscored =
        "the analysis failed: " + (first.is_string() ? std::string(first.as_string()) : "");
  }
  return to_json(s);
}

std::string with_disposition(std::string analysis_json, const disposition& d) {
  const auto close = analysis_json.find_last_not_of(" \t\r\n");
  if (close == std::string::npos || analysis_json[close] != '}' ||
      analysis_json.find('{') == std::string::npos)
    throw std::invalid_argument("an analysis must be a JSON object");
  const auto before = analysis_json.find_last_not_of(" \t\r\n", close - 1);
  const bool empty = before != std::string::npos && analysis_json[before] == '{';
  analysis_json.insert(
      close, (empty ? "" : ",") + std::string("\"disposition\":") + json::serialize(to_json(d)));
  return analysis_json;
}

report_line line_of(const delivery& d, const analysis_summary& analysis,
                    const disposition& answer) {
  report_line line;
  line.number = d.number;
  line.received_at = format_time(d.received_at);
  line.client_ip = d.connection.client_ip;
  line.mail_from = d.envelope.mail_from;
  if (d.tls.used) {
    line.tls_version = d.tls.version.value_or("");
    line.tls_cipher = d.tls.cipher;
  }
  line.failed_handshakes = static_cast<std::int64_t>(d.tls.failed_handshakes.size());
  line.score_json = json::serialize(to_json(analysis.score));
  line.disposition_json = json::serialize(to_json(answer));
  line.spf_pass = analysis.spf == auth_result::pass;
  line.dmarc_pass = analysis.dmarc == auth_result::pass;
  for (auto r : analysis.dkim)
    if (r == auth_result::pass) line.dkim_pass = true;
  return line;
}

json::object to_json(const report_line& line) {
  return json::object{{"delivery", line.number},
                      {"received_at", line.received_at},
                      {"client_ip", line.client_ip},
                      {"mail_from", line.mail_from},
                      {"tls", optional_json(line.tls_version)},
                      {"score", current_score(parse_stored(line.score_json))},
                      {"disposition", json::parse(line.disposition_json)}};
}

json::object merge_report(const std::string& facts_json, json::object analysis) {
  json::object facts = parse_stored(facts_json).as_object();
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
  for (const char* key : {"disposition", "score", "auth", "received_chain", "checks", "providers",
                          "dns", "analysis"}) {
    if (auto it = analysis.find(key); it != analysis.end()) out[key] = std::move(it->value());
  }
  if (auto* score = out.if_contains("score")) {
    const auto* about = out.if_contains("analysis");
    *score = current_score(
        *score, about && about->is_object() ? about->as_object().if_contains("errors") : nullptr);
  }
  return out;
}

}  // namespace mxlens::core
