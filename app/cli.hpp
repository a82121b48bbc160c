// Command-line parsing shared by the subcommands: every flag can also come from the environment
// as MXLENS_<NAME> (flag name uppercased, '-' as '_'); the command line wins. A bad flag or value
// is one line naming it and exit status 2.
#pragma once

#include <boost/program_options.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace mxlens::app {

// Exit status for a usage error.
inline constexpr int exit_usage = 2;

class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses args (without the program and subcommand names) against `options`, taking values for
// the flags not given from MXLENS_* variables. `positional` names positional arguments in order.
// Throws usage_error with a one-line message.
boost::program_options::variables_map parse(
    const std::vector<std::string>& args,
    const boost::program_options::options_description& options,
    const std::vector<std::string>& positional = {});

}  // namespace mxlens::app
