// One delivery's analysis: reverse DNS, SPF (MAIL FROM and HELO), DKIM, DMARC, the message's
// content, the check catalog, the score and the providers' verdicts, all through one resolver.
// Runs inside a worker process (see analyzers/worker) or in `mxlens analyze`; an analyzer that
// fails adds to `errors`, stands in with its temporary-error result, and the others still run.
//
// The input and the result are types; their JSON forms (the worker's frames, and the analysis
// members of the report) are written by tag_invoke serializers and read back by their inverses.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analyzers/arc/arc.hpp"
#include "analyzers/checks/checks.hpp"
#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dmarc/dmarc.hpp"
#include "analyzers/dns/resolver.hpp"
#include "analyzers/providers/providers.hpp"
#include "analyzers/rdns/rdns.hpp"
#include "analyzers/spf/spf.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers {

struct analysis_input {
  // What the receiver recorded (connection, tls with the failed handshakes of the client's
  // earlier sessions, envelope, data, received_at) and the message in `raw`. For a message
  // analyzed from a file: what the command line and an optional recorded session gave.
  core::delivery delivery;
  bool have_session = true;
  std::string receiver;  // our host name, the authserv-id
  bool bulk = false;     // judge as a bulk sender (unsubscribe checks fail instead of warn)

  bool operator==(const analysis_input&) const = default;
};

// The worker's job frame: {"delivery", "have_session", "receiver", "bulk"}; the delivery's raw
// bytes and transcript are not in it (the raw message is the job's second frame).
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const analysis_input& in);
analysis_input tag_invoke(boost::json::value_to_tag<analysis_input>, const boost::json::value& v);

struct analysis {
  rdns::result rdns;
  spf::result spf;
  std::optional<spf::result> spf_helo;  // none when the EHLO argument is not a name
  std::vector<dkim::signature> dkim;
  dmarc::result dmarc;
  arc::result arc;
  std::string authentication_results;
  std::vector<message::hop> received_chain;  // oldest hop first (message/received.hpp)
  std::vector<checks::check> checks;
  core::score score;
  providers::judgement providers;
  boost::json::array dns;  // every question and answer, as dns::lookups::evidence() records them
  std::int64_t duration_ms = 0;
  std::vector<std::string> errors;

  bool operator==(const analysis&) const = default;
};

// {"connection": {ptr, fcrdns, ...}, "auth": {spf, spf_helo, dkim, dmarc,
//  arc, authentication_results}, "received_chain", "checks", "score", "providers", "dns",
//  "analysis": {duration_ms, errors}}: the members the report takes from the analysis.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const analysis& a);
analysis tag_invoke(boost::json::value_to_tag<analysis>, const boost::json::value& v);

core::analysis_summary summary_of(const analysis& a);

analysis analyze(const analysis_input& in, dns::resolver& resolver);

// Loads what the analyzers would otherwise open on first use — the public suffix list,
// libopendkim's library state (which reads the resolver's files) — for a worker whose sandbox
// opens no file afterwards.
void preload();

// The analysis of a job that produced none, so that the delivery still gets a report: every
// check an error (nothing was judged, nothing reads as a pass), every provider deferring, and no
// score ("unscored": "the analysis failed: " and the error). An analysis in which an analyzer
// failed is unscored the same way.
analysis failed_analysis(const std::string& error);

}  // namespace mxlens::analyzers
