// `mxlens analyze FILE.eml`: the analyzers on a saved message, in this process, without SMTP.
// `mxlens __worker`: the analysis worker process the server starts (internal, not listed).
#include <boost/json/serialize.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "analyzers/analysis/analysis.hpp"
#include "analyzers/worker/worker.hpp"
#include "app/analysis_options.hpp"
#include "app/cli.hpp"
#include "app/commands.hpp"

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
    ("hostname", po::value<std::string>()->default_value(system_hostname()), "this receiver's name in Authentication-Results");
  // clang-format on
  o.add(dns_options());
  try {
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end()) {
      std::cout << "Usage: mxlens analyze FILE.eml [OPTIONS]\n\n"
                   "Runs the analyzers (reverse DNS, SPF, DKIM, DMARC) on a saved message and\n"
                   "prints the result as JSON.\n\n"
                << o;
      return 0;
    }
    auto vm = parse(args, o, {"file"});
    auto resolver_settings = dns_settings(vm);
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
    input.client_ip = client_ip;
    input.helo = vm["helo"].as<std::string>();
    input.mail_from = vm["mail-from"].as<std::string>();
    input.receiver = vm["hostname"].as<std::string>();
    input.raw = to_crlf(content.str());
    analyzers::dns::resolver resolver(resolver_settings);
    std::cout << boost::json::serialize(analyzers::analyze(input, resolver)) << "\n";
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
      "cpu-seconds", po::value<int>()->default_value(60), "CPU time per job");
  o.add(dns_options());
  try {
    auto vm = parse(args, o);
    analyzers::worker::worker_settings s;
    s.fd = vm["fd"].as<int>();
    s.memory_mb = vm["memory-mb"].as<std::size_t>();
    s.cpu_seconds = vm["cpu-seconds"].as<int>();
    s.dns = dns_settings(vm);
    return analyzers::worker::run_worker(s);
  } catch (const std::exception& e) {
    std::cerr << "mxlens __worker: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mxlens::app
