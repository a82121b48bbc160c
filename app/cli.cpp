#include "app/cli.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>

namespace mxlens::app {

namespace po = boost::program_options;

namespace {

std::string env_name(const std::string& flag) {
  std::string out = "MXLENS_";
  for (char c : flag) out.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return out;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto comma = s.find(',', start);
    auto part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

po::variables_map parse_tokens(const std::vector<std::string>& args,
                               const po::options_description& options,
                               const po::positional_options_description& pos) {
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).positional(pos).run(), vm);
  return vm;
}

}  // namespace

po::variables_map parse(const std::vector<std::string>& args,
                        const po::options_description& options,
                        const std::vector<std::string>& positional) {
  po::positional_options_description pos;
  for (const auto& name : positional) pos.add(name.c_str(), 1);
  try {
    auto given = parse_tokens(args, options, pos);
    // Flags not on the command line may come from the environment.
    std::vector<std::string> all = args;
    for (const auto& opt : options.options()) {
      const auto& name = opt->long_name();
      if (name == "help" || (given.count(name) && !given[name].defaulted())) continue;
      const std::string var = env_name(name);
      const char* value = std::getenv(var.c_str());
      if (!value) continue;
      const bool is_switch = opt->semantic()->max_tokens() == 0;
      if (is_switch) {
        std::string v = value;
        if (v == "1" || v == "true" || v == "yes") {
          all.push_back("--" + name);
        } else if (!(v.empty() || v == "0" || v == "false" || v == "no")) {
          throw usage_error(var + ": expected 1 or 0, got '" + v + "'");
        }
        continue;
      }
      auto values = opt->semantic()->is_composing() || opt->semantic()->max_tokens() > 1
                        ? split_commas(value)
                        : std::vector<std::string>{value};
      for (const auto& v : values) all.push_back("--" + name + "=" + v);
    }
    auto vm = parse_tokens(all, options, pos);
    po::notify(vm);
    return vm;
  } catch (const po::error& e) {
    // `mxlens check --help` without the ID it requires is a request for help, not a mistake.
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end()) {
      std::cout << options;
      if (!positional.empty()) {
        std::cout << "\nArguments:";
        for (const auto& name : positional) {
          std::string upper = name;
          for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          std::cout << " " << upper;
        }
        std::cout << "\n";
      }
      std::cout.flush();
      std::exit(0);
    }
    throw usage_error(e.what());
  }
}

}  // namespace mxlens::app
