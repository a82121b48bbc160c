// Parsing of SMTP command lines and of the MAIL/RCPT path arguments, as pure functions so they
// can be tested and fuzzed without a socket.
//
// A path is read exactly as RFC 5321 §4.1.2 and §4.1.3 write it, with RFC 6531 §3.3's UTF-8 in
// local parts and domains: "<" [ A-d-l ":" ] Mailbox ">", the null path "<>" for MAIL only, and
// "<Postmaster>" for RCPT only. A source route (the A-d-l) is checked, then discarded (RFC 5321
// §4.1.1.3, appendix C). Not here: whether a non-ASCII address came with SMTPUTF8 (the session
// knows), and what a parameter's value means.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "receiver/reply.hpp"

namespace mxlens::receiver {

// RFC 5321 §4.5.3.1.3: a path is at most 256 octets.
inline constexpr std::size_t max_path_length = 256;

struct command_line {
  std::string verb;  // uppercased
  std::string args;  // after the first space, trailing spaces removed
};

command_line split_command(std::string_view line);

struct path_command {
  std::string address;  // without angle brackets and source route; empty for <>
  std::vector<std::pair<std::string, std::string>> params;  // keyword uppercased, value
};

// Parses "FROM:<a@b.example> SIZE=123" (keyword FROM) or "TO:<…>" (keyword TO). On failure
// returns the reply to send: 501 5.1.7 (a sender) or 5.1.3 (a recipient) naming what is wrong
// with the path, 501 5.5.4 for the keyword and the parameters.
std::variant<path_command, reply> parse_path_command(std::string_view args,
                                                     std::string_view keyword, bool is_sender);

bool has_non_ascii(std::string_view s);

}  // namespace mxlens::receiver
