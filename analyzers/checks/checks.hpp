// The check catalog (CHECKS.md): every finding of a report is a check with a stable id, a status,
// the evidence it rests on, a fix when it is not a pass, and references. The catalog table holds
// each id's category, weight and references; the evaluators are functions of the recorded session
// and the analyzers' results, as types; the score applies the weights exactly as CHECKS.md defines.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/arc/arc.hpp"
#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/message/message.hpp"
#include "analyzers/rdns/rdns.hpp"
#include "analyzers/spf/spf.hpp"
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

// A check's status, spelled as in the report.
enum class status { pass, warn, fail, info, skip, error };
std::string_view to_string(status s);
status status_of(std::string_view token);  // throws std::invalid_argument

struct check {
  std::string id;
  checks::status status = status::skip;
  std::string summary;
  boost::json::value evidence;
  std::optional<std::string> fix;

  bool operator==(const check&) const = default;
};

// What the evaluators read: the recorded session and each analyzer's result. An analyzer that
// failed is represented by its result's temporary-error form (see analysis.cpp).
struct inputs {
  // connection, tls (with the failed handshakes of the client's earlier sessions), envelope,
  // data, received_at; for a message analyzed from a file, what the command line gave.
  const core::delivery& session;
  bool have_session = true;  // false for a message analyzed without its SMTP session
  const rdns::result& rdns;
  const spf::result& spf;                      // the MAIL FROM identity
  const std::optional<spf::result>& spf_helo;  // the HELO identity, when there is a name
  const std::vector<dkim::signature>& dkim;
  const dmarc::result& dmarc;
  const arc::result& arc;
  const message::content_facts& content;
  bool bulk = false;
};

// Every check of the catalog, in catalog order.
std::vector<check> evaluate(const inputs& in);

// A check as the report has it (its catalog row's category, refs and weight included), and the
// inverse, which takes those from the catalog again.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const check& c);
check tag_invoke(boost::json::value_to_tag<check>, const boost::json::value& v);

// max(0, 10 - sum of costs), one decimal, where a fail costs its weight, a warn half of it and an
// error its weight; passed = passes; errors = errors; total = passes + warns + fails + errors.
// Unscored when no check with a weight passed, warned or failed (all errors, or none applied).
core::score score(const std::vector<check>& checks);

// RFC 5322 §3.6's at-most-once fields that occur more than once, in that list's order
// (hdr.duplicates, and the providers' duplicate-header rule).
std::vector<std::string> duplicated_singletons(const std::vector<message::header_field>& fields);

// The evaluators of each part of the catalog.
std::vector<check> transport_checks(const inputs& in);
std::vector<check> auth_checks(const inputs& in);
std::vector<check> message_checks(const inputs& in);

}  // namespace mxlens::analyzers::checks
