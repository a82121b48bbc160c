// The options of the analyzers' resolver, shared by `serve`, `analyze` and the worker.
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "analyzers/dns/resolver.hpp"

namespace mxlens::app {

boost::program_options::options_description dns_options();
// Throws usage_error for a bad value.
analyzers::dns::settings dns_settings(const boost::program_options::variables_map& vm);
// The same settings as worker arguments.
std::vector<std::string> dns_arguments(const analyzers::dns::settings& s);

}  // namespace mxlens::app
