// libspf2 as a second opinion: what receivers that use it compute for the same identity, on the
// same record, with every question going through the same `dns::lookups` (the questions our
// evaluator asked too are answered from memory; all show in the same evidence). Its verdict is
// never ours (docs/libraries.md §2): the spf.interop check shows it when it differs.
#pragma once

#include <optional>
#include <string>

#include "analyzers/dns/resolver.hpp"
#include "analyzers/spf/spf.hpp"

namespace mxlens::analyzers::spf {

// Questions libspf2 may ask in one evaluation. Its count of DNS-querying terms restarts in each
// include, so nested includes ten wide multiply (10^18 interpretations for 19 names, each
// answered from memory); past this it is stopped and gives no opinion.
inline constexpr int max_libspf2_questions = 1000;

// check_host(<ip>, the sender's domain, sender) as libspf2 1.2.10 evaluates it, without its
// "localhost always passes" shortcut, which RFC 7208 does not have; nothing when it asked more
// than max_libspf2_questions.
std::optional<core::auth_result> libspf2_check(dns::lookups& dns, const request& req,
                                               const std::string& sender);

}  // namespace mxlens::analyzers::spf
