// Reads the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): finds the end of data, undoes dot-stuffing
// and records what a later check grades (bare LF/CR, long lines, 8-bit octets).
//
// The end of data is CRLF "." CRLF and nothing else. A bare LF or bare CR never ends the data,
// never starts a line for dot-unstuffing, and never splits one message into two: that is what
// makes SMTP smuggling impossible here. Those octets are kept as they came and counted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/types.hpp"

namespace mxlens::receiver {

class data_reader {
 public:
  data_reader(std::uint64_t max_size, std::size_t max_line);

  // Consumes bytes; returns how many were taken. Once done(), the rest of `input` was not taken
  // and belongs to the next command.
  std::size_t feed(std::string_view input);

  bool done() const { return state_ == state::end; }
  // The message went over max_size; what was over was not kept.
  bool too_big() const { return too_big_; }
  // A line went over max_line.
  bool line_too_long() const { return line_too_long_; }
  // From now on the message is only read to its end, not kept: the server has no room for it.
  void stop_keeping() {
    keeping_ = false;
    std::string().swap(message_);
  }
  bool kept() const { return keeping_; }
  // Octets of message after unstuffing, including any not kept.
  std::uint64_t size() const { return size_; }

  std::string& message() { return message_; }
  const core::data_facts& facts() const { return facts_; }

 private:
  enum class state {
    bol,         // at the beginning of a line (after CRLF, or at the start)
    bol_dot,     // "." at the beginning of a line
    bol_dot_cr,  // ".\r" at the beginning of a line
    mid,         // inside a line
    cr,          // "\r" inside a line, not yet known to be followed by "\n"
    end,
  };
  void emit(char c);
  void grow_line();
  void in_line(char c);
  void end_line();

  std::uint64_t max_size_;
  std::size_t max_line_;
  state state_ = state::bol;
  std::uint64_t line_length_ = 0;
  std::uint64_t size_ = 0;
  bool too_big_ = false;
  bool line_too_long_ = false;
  bool keeping_ = true;
  std::string message_;
  core::data_facts facts_;
};

}  // namespace mxlens::receiver
