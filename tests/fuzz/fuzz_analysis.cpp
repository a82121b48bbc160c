// The whole analysis of one delivery (analyzers/analysis): reverse DNS, SPF for MAIL FROM and
// HELO, DKIM, the message's content, DMARC, the checks, the score and the providers' verdicts, on
// a message and a DNS zone the fuzzer writes, served by the DNS double (tests/fuzz/dns_double.hpp)
// to the production resolver.
//
// Oracles: no crash, no abort, no sanitizer report; no analyzer fails (STYLE.md 6: the remote
// side never makes us throw, so an entry in `errors` is a bug); a score within 0 to 10 exactly
// when it is not unscored; the worker's frames read back what was written (the job, and the
// analysis through its JSON text, as analyzers/worker sends them).
//
// Input: a first line "CLIENT_IP HELO MAIL_FROM" (MAIL_FROM "<>" for the null sender), zone lines
// in dnsmasq's syntax (tests/dns/zones.conf) up to an empty line, then the message, whose line
// ends are made CRLF as `mxlens analyze` makes them.
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "analyzers/analysis/analysis.hpp"
#include "core/json.hpp"
#include "tests/fuzz/dns_double.hpp"
#include "tests/fuzz/oracle.hpp"

using namespace mxlens;

using mxlens::fuzz::require;

namespace {

// LF or CRLF line ends as CRLF.
std::string crlf(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += s[i];
  }
  return out;
}

// 2026-01-01T00:00:00Z: a fixed arrival, so that one input always gives the same analysis.
constexpr core::unix_ms arrival = 1767225600000;

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::dns_double server;
  static const bool ready = [] {
    analyzers::preload();
    return true;
  }();
  (void)ready;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto first = in.find('\n');
  if (first == std::string_view::npos) return 0;
  std::istringstream words{std::string(in.substr(0, first))};
  std::string client_ip, helo, mail_from;
  words >> client_ip >> helo >> mail_from;
  if (analyzers::dns::reverse_name(client_ip).empty()) return 0;  // as `mxlens analyze` refuses
  if (mail_from == "<>") mail_from.clear();
  auto rest = in.substr(first + 1);
  auto blank = rest.find("\n\n");
  const auto zone_text = rest.substr(0, blank);
  const auto message =
      blank == std::string_view::npos ? std::string_view{} : rest.substr(blank + 2);
  server.serve(fuzz::parse_zone(zone_text));

  analyzers::analysis_input input;
  input.receiver = "mx.test";
  input.have_session = false;
  auto& d = input.delivery;
  d.test_id = "fuzzed";
  d.number = 1;
  d.received_at = arrival;
  d.connection.client_ip = client_ip;
  d.connection.ipv6 = client_ip.find(':') != std::string::npos;
  d.connection.helo = helo;
  d.connection.esmtp = true;
  d.connection.started_at = arrival;
  d.envelope.mail_from = mail_from;
  d.envelope.rcpt_to = {"fuzzed@mx.test"};
  d.raw = crlf(message);

  analyzers::dns::settings s;
  s.upstream = server.upstream();
  s.timeout = std::chrono::milliseconds(2000);
  analyzers::dns::resolver resolver(s);  // one per input: nothing is remembered from the last
  const auto a = analyzers::analyze(input, resolver);

  std::string errors;
  for (const auto& e : a.errors) errors += e + "; ";
  require(a.errors.empty(), "an analyzer failed:", errors);
  require(a.score.value.has_value() != a.score.unscored.has_value(),
          "a score both scored and unscored, or neither");
  if (a.score.value) require(*a.score.value >= 0 && *a.score.value <= 10, "a score outside 0-10");

  // The worker's frames, written and read as analyzers/worker does: the job without the raw
  // message (its own frame), the summary and the analysis. Strings hold the wire's octets, UTF-8
  // or not (core/text.hpp), and read back as they were.
  auto job = input;
  job.delivery.raw.clear();
  const auto job_back =
      core::read_json<analyzers::analysis_input>(boost::json::serialize(core::to_json(job)));
  require(job_back && *job_back == job, "the job frame reads back otherwise");
  const auto summary = analyzers::summary_of(a);
  const auto summary_back =
      core::read_json<core::analysis_summary>(boost::json::serialize(core::to_json(summary)));
  require(summary_back && *summary_back == summary, "the summary frame reads back otherwise");
  const auto back = core::read_json<analyzers::analysis>(boost::json::serialize(core::to_json(a)));
  require(back && *back == a, "the analysis frame reads back otherwise");
  return 0;
}
