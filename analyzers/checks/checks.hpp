// The check catalog (CHECKS.md): every finding of a report is a check with a stable id, a status,
// the evidence it rests on, a fix when it is not a pass, and references. The catalog table holds
// each id's category, weight and references; the evaluators turn facts into statuses; the score
// applies the weights exactly as CHECKS.md defines.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/message/message.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers::checks {

struct catalog_entry {
  std::string_view id;
  std::string_view category;
  double weight;  // what a fail costs out of 10; a warn costs half
  std::vector<std::string_view> refs;
};

const std::vector<catalog_entry>& catalog();
const catalog_entry& entry(std::string_view id);  // throws std::out_of_range for an unknown id

struct check {
  std::string id;
  std::string status;  // pass warn fail info skip error
  std::string summary;
  boost::json::value evidence;
  std::optional<std::string> fix;
};

// What the evaluators read: the recorded session facts and the analysis, as report JSON, and
// the message's content facts.
struct inputs {
  const boost::json::object& connection;  // facts and analysis merged
  const boost::json::object& tls;
  const boost::json::object& envelope;
  const boost::json::object& data;
  const boost::json::object& auth;
  const message::content_facts& content;
  core::unix_ms received_at = 0;
  bool bulk = false;
  bool have_session = true;  // false for a message analyzed without its SMTP session
};

// Every check of the catalog, in catalog order.
std::vector<check> evaluate(const inputs& in);

boost::json::object to_json(const check& c);

struct score_result {
  double value = 10;
  int passed = 0;
  int total = 0;
};
// max(0, 10 - sum of costs), one decimal; passed = passes; total = passes + warns + fails.
score_result score(const std::vector<check>& checks);
boost::json::object to_json(const score_result& s);

// Shared by the evaluators: the status helpers.
std::vector<check> transport_checks(const inputs& in);
std::vector<check> auth_checks(const inputs& in);
std::vector<check> message_checks(const inputs& in);

}  // namespace mxlens::analyzers::checks
