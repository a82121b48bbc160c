// libspf2 as a second opinion: what receivers that use it compute for the same identity, on the
// same record, with every question going through the same `dns::lookups` (the questions our
// evaluator asked too are answered from memory; all show in the same evidence). Its verdict is
// never ours (docs/libraries.md §2): the spf.interop check shows it when it differs.
#pragma once

#include <string>

#include "analyzers/dns/resolver.hpp"
#include "analyzers/spf/spf.hpp"

namespace mxlens::analyzers::spf {

// check_host(<ip>, the sender's domain, sender) as libspf2 1.2.10 evaluates it, without its
// "localhost always passes" shortcut, which RFC 7208 does not have.
core::auth_result libspf2_check(dns::lookups& dns, const request& req, const std::string& sender);

}  // namespace mxlens::analyzers::spf
