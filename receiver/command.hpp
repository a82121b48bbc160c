// Parsing of SMTP command lines and of the MAIL/RCPT path arguments (RFC 5321 §4.1.2), as pure
// functions so they can be tested and fuzzed without a socket.
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
  bool bracketed = true;
};

// Parses "FROM:<a@b.example> SIZE=123" (keyword FROM) or "TO:<…>" (keyword TO). On failure
// returns the reply to send.
std::variant<path_command, reply> parse_path_command(std::string_view args,
                                                     std::string_view keyword, bool is_sender);

bool has_non_ascii(std::string_view s);

}  // namespace mxlens::receiver
