// `mxlens analyze FILE.eml`: the analyzers on a saved message, in this process, without SMTP.
// `mxlens __worker`: the analysis worker process the server starts (internal, not listed).
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "analyzers/analysis/analysis.hpp"
#include "analyzers/worker/worker.hpp"
#include "app/analysis_options.hpp"
#include "app/cli.hpp"
#include "app/commands.hpp"
#include "app/report.hpp"
#include "core/json.hpp"
#include "core/report.hpp"
#include "core/text.hpp"
#include "core/types.hpp"

namespace mxlens::app {

namespace po = boost::program_options;

namespace {

// A saved message may use bare LF line ends; SMTP would have carried CRLF.
std::string to_crlf(const std::string& in) {
  std::string out;
  out.reserve(in.size() + in.size() / 32);
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
    out += in[i];
  }
  return out;
}

// The recorded session of a report ('tests show', the API) or of a session file: its connection,
// tls, envelope and data, read strictly (a missing, mistyped or unknown-valued field is refused).
// `duration_ms`: how long the connection had lasted at the end of DATA, as the report says.
core::delivery read_session(const std::string& file, core::unix_ms& duration_ms) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw usage_error("--session: cannot read '" + file + "'");
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto v = boost::json::parse(text.str(), ec);
  if (ec || !v.is_object()) throw usage_error("--session: '" + file + "' is not a JSON object");
  const auto& o = v.as_object();
  core::delivery d;
  duration_ms = 0;
  if (auto* c = o.if_contains("connection"); c && c->is_object())
    if (auto* ms = c->as_object().if_contains("duration_ms"); ms && ms->is_number())
      duration_ms = static_cast<core::unix_ms>(ms->to_number<double>());
  const char* part = "connection";
  try {
    d.connection = core::from_json<core::connection_facts>(core::read::member(o, part));
    part = "tls";
    d.tls = core::from_json<core::tls_facts>(core::read::member(o, part));
    part = "envelope";
    d.envelope = core::from_json<core::envelope>(core::read::member(o, part));
    part = "data";
    d.data = core::from_json<core::data_facts>(core::read::member(o, part));
  } catch (const std::exception& e) {
    throw usage_error("--session: '" + file + "': " + part + ": " + e.what());
  }
  return d;
}

}  // namespace

int analyze_command(const std::vector<std::string>& args) {
  po::options_description o("mxlens analyze options");
  // clang-format off
  o.add_options()
    ("help,h", "show this help")
    ("file", po::value<std::string>()->required(), "the message (RFC 5322), '-' for standard input")
    ("client-ip", po::value<std::string>()->default_value("127.0.0.1"), "address the message came from")
    ("helo", po::value<std::string>()->default_value(""), "EHLO name the client gave")
    ("mail-from", po::value<std::string>()->default_value(""), "MAIL FROM address (empty: the null sender)")
    ("hostname", po::value<std::string>()->default_value(system_hostname()), "this receiver's name in Authentication-Results")
    ("session", po::value<std::string>(), "JSON with the recorded session (connection, tls, envelope, data), e.g. a report from 'tests show'")
    ("bulk", po::bool_switch(), "judge as a bulk sender")
    ("format", po::value<std::string>()->default_value("json"), "json (the report) or text (a readable summary)");
  // clang-format on
  o.add(dns_options());
  try {
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end()) {
      std::cout << "Usage: mxlens analyze FILE.eml [OPTIONS]\n\n"
                   "Runs the analyzers (reverse DNS, SPF, DKIM, DMARC, the check catalog, the\n"
                   "providers' verdicts) on a saved message and prints the report.\n\n"
                << o;
      return 0;
    }
    auto vm = parse(args, o, {"file"});
    auto resolver_settings = dns_settings(vm);
    const auto format = vm["format"].as<std::string>();
    if (format != "json" && format != "text") throw usage_error("--format must be json or text");
    const auto client_ip = vm["client-ip"].as<std::string>();
    if (analyzers::dns::reverse_name(client_ip).empty())
      throw usage_error("--client-ip '" + client_ip + "' is not an IP address");
    const auto file = vm["file"].as<std::string>();
    std::ostringstream content;
    if (file == "-") {
      content << std::cin.rdbuf();
    } else {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        std::cerr << "mxlens analyze: cannot read '" << file << "'\n";
        return 1;
      }
      content << in.rdbuf();
    }
    analyzers::analysis_input input;
    input.receiver = vm["hostname"].as<std::string>();
    input.bulk = vm["bulk"].as<bool>();
    auto& d = input.delivery;
    input.have_session = vm.count("session") > 0;
    core::unix_ms recorded_duration = 0;
    if (input.have_session) {
      d = read_session(vm["session"].as<std::string>(), recorded_duration);
    } else {
      // Nothing was recorded: a port of 0, EHLO assumed, no TLS, no transcript.
      d.connection.esmtp = true;
      d.envelope.rcpt_to = {"analyzed@" + input.receiver};
    }
    // What the command line says explicitly wins over the session.
    auto given = [&](const char* name) { return vm.count(name) && !vm[name].defaulted(); };
    if (!input.have_session || given("client-ip")) d.connection.client_ip = client_ip;
    if (!input.have_session || given("helo")) d.connection.helo = vm["helo"].as<std::string>();
    if (!input.have_session || given("mail-from"))
      d.envelope.mail_from = vm["mail-from"].as<std::string>();
    d.connection.ipv6 = d.connection.client_ip.find(':') != std::string::npos;
    d.test_id = "analyzed";
    d.number = 1;
    // Received now (the checks compare the message's dates with the arrival), after the recorded
    // session's duration: what the report shows of the session is what was recorded.
    d.received_at = core::now_ms();
    d.connection.started_at = d.received_at - recorded_duration;
    d.raw = to_crlf(content.str());
    analyzers::dns::resolver resolver(resolver_settings);
    const auto analysis = analyzers::analyze(input, resolver);
    auto facts = core::delivery_facts_json(d);
    facts.as_object()["session_recorded"] = input.have_session;
    auto report = delivery_report(boost::json::serialize(facts),
                                  boost::json::serialize(core::to_json(analysis)));
    if (format == "text") {
      std::cout << report_text(report, ::isatty(STDOUT_FILENO) == 1);
    } else {
      std::cout << core::printable_json(report) << "\n";
    }
    return 0;
  } catch (const usage_error& e) {
    std::cerr << "mxlens analyze: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "mxlens analyze: " << e.what() << "\n";
    return 1;
  }
}

int worker_command(const std::vector<std::string>& args) {
  po::options_description o("mxlens __worker options");
  o.add_options()("fd", po::value<int>()->default_value(3), "socket to the server")(
      "memory-mb", po::value<std::size_t>()->default_value(1024), "address-space limit")(
      "cpu-seconds", po::value<int>()->default_value(60), "CPU time per job")(
      "uid", po::value<unsigned>(), "the user to become")("gid", po::value<unsigned>(),
                                                          "the group to become");
  o.add(dns_options());
  try {
    auto vm = parse(args, o);
    analyzers::worker::worker_settings s;
    s.fd = vm["fd"].as<int>();
    s.memory_mb = vm["memory-mb"].as<std::size_t>();
    s.cpu_seconds = vm["cpu-seconds"].as<int>();
    s.dns = dns_settings(vm);
    if (vm.count("uid")) s.sandbox.uid = vm["uid"].as<unsigned>();
    if (vm.count("gid")) s.sandbox.gid = vm["gid"].as<unsigned>();
    return analyzers::worker::run_worker(s);
  } catch (const std::exception& e) {
    std::cerr << "mxlens __worker: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mxlens::app
