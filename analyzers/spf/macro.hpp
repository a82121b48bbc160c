// RFC 7208 §7: SPF macros. The syntax check the record parser runs over every macro-string, and
// the expansion the evaluator runs over domain-specs and explanations: pure functions of a
// context; the one lookup a macro can need (%{p}, §7.3) is a callback of the evaluator's.
#pragma once

#include <ctime>
#include <functional>
#include <string>
#include <string_view>

namespace mxlens::analyzers::spf {

// Where a macro-string stands: c, r and t are allowed only in explanation text (§7.1).
enum class macro_place { domain_spec, explanation };

struct macro_context {
  std::string sender;         // s: local-part@domain, postmaster@ when it had no local-part
  std::string local_part;     // l
  std::string sender_domain;  // o
  std::string domain;         // d: the domain of the check_host() in progress
  std::string client_ip;      // i and c: IPv4 dotted, IPv6 as written (an IPv4-mapped one as IPv4)
  std::string helo;           // h
  std::string receiver;       // r
  std::time_t now = 0;        // t
  // p: the client's validated domain name (§7.3), "unknown" when it has none; asked only when a
  // %{p} is expanded, because it costs lookups.
  std::function<std::string()> validated_name;
};

// Why `text` is not a macro-string (§7.1, §12), with the offset of the fault; empty when it is.
struct macro_fault {
  std::string error;
  std::size_t position = 0;
};
macro_fault macro_error(std::string_view text, macro_place place);

// The expansion of a macro-string that macro_error() accepted (§7.3, §7.4).
std::string expand(std::string_view text, const macro_context& c);

}  // namespace mxlens::analyzers::spf
