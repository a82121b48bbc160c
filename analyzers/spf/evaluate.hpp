// RFC 7208 §4: check_host(), ours. The record is read by record.hpp, its macros expanded by
// macro.hpp, and every DNS question goes to one query function: in production the evaluation's
// `dns::lookups` (so SPF shares the one resolver and its evidence), in unit tests a table. The
// limits of §4.6.4 are enforced here, where each is defined: 10 DNS-querying terms and 2 void
// lookups over the whole evaluation, includes and redirects included; 10 MX names per mx term;
// the first 10 PTR names for ptr and %{p}.
#pragma once

#include <ctime>
#include <functional>
#include <string>

#include "analyzers/dns/resolver.hpp"
#include "analyzers/spf/spf.hpp"

namespace mxlens::analyzers::spf {

// §4.6.4: per mx term, MX names; per ptr term or %{p}, PTR names looked at.
inline constexpr std::size_t max_mx_names = 10;
inline constexpr std::size_t max_ptr_names = 10;

using query_fn = std::function<dns::answer(const std::string& name, dns::rr_type type)>;

// check_host()'s arguments (§4.1), the identity already chosen.
struct host_request {
  std::string domain;     // <domain>, normalized
  std::string sender;     // <sender>: local-part@domain, postmaster@ when it had no local-part
  std::string client_ip;  // <ip>
  std::string helo;
  std::string receiver;  // %{r}
  std::time_t now = 0;   // %{t}
};

// The result, with the record term by term (result::terms) and the term that decided it; the
// libspf2 field is not the evaluator's.
result check_host(const query_fn& query, const host_request& req);

}  // namespace mxlens::analyzers::spf
