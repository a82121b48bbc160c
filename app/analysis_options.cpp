#include "app/analysis_options.hpp"

#include "app/cli.hpp"

namespace mxlens::app {

namespace po = boost::program_options;

po::options_description dns_options() {
  po::options_description o("DNS options");
  // clang-format off
  o.add_options()
    ("dns", po::value<std::string>()->default_value("system"), "resolver upstream: 'system' (resolv.conf) or IP[@PORT]")
    ("dns-timeout", po::value<double>()->default_value(5.0), "seconds one DNS question may take before it is a temperror")
    ("dns-budget", po::value<double>()->default_value(20.0), "seconds all the DNS questions of one delivery's analysis may take; later questions are temperrors")
    ("dns-trust-anchor", po::value<std::string>()->default_value(""), "DNSSEC root key file (e.g. /usr/share/dns/root.key): answers are validated and marked secure");
  // clang-format on
  return o;
}

analyzers::dns::settings dns_settings(const po::variables_map& vm) {
  analyzers::dns::settings s;
  s.upstream = vm["dns"].as<std::string>();
  try {
    analyzers::dns::validate_upstream(s.upstream);
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());
  }
  const double t = vm["dns-timeout"].as<double>();
  if (!(t >= 0.1 && t <= 60)) throw usage_error("--dns-timeout must be between 0.1 and 60 seconds");
  s.timeout = std::chrono::milliseconds(static_cast<long>(t * 1000));
  const double b = vm["dns-budget"].as<double>();
  if (!(b >= 0.1 && b <= 600))
    throw usage_error("--dns-budget must be between 0.1 and 600 seconds");
  s.budget = std::chrono::milliseconds(static_cast<long>(b * 1000));
  s.trust_anchor = vm["dns-trust-anchor"].as<std::string>();
  return s;
}

std::vector<std::string> dns_arguments(const analyzers::dns::settings& s) {
  std::vector<std::string> out{"--dns",         s.upstream,
                               "--dns-timeout", std::to_string(s.timeout.count() / 1000.0),
                               "--dns-budget",  std::to_string(s.budget.count() / 1000.0)};
  if (!s.trust_anchor.empty()) {
    out.push_back("--dns-trust-anchor");
    out.push_back(s.trust_anchor);
  }
  return out;
}

}  // namespace mxlens::app
