#include "receiver/data_reader.hpp"

namespace mxlens::receiver {

namespace {
// RFC 5322 §2.1.1: a line is at most 998 octets without its CRLF.
constexpr std::uint64_t rfc5322_max_line = 998;
}  // namespace

data_reader::data_reader(std::uint64_t max_size, std::size_t max_line)
    : max_size_(max_size), max_line_(max_line) {}

void data_reader::emit(char c) {
  ++size_;
  if (size_ > max_size_) {
    too_big_ = true;
    return;
  }
  if (!line_too_long_ && keeping_) message_.push_back(c);
}

void data_reader::end_line() {
  ++facts_.lines;
  if (line_length_ > rfc5322_max_line) ++facts_.long_lines;
  if (line_length_ > facts_.max_line) facts_.max_line = line_length_;
  line_length_ = 0;
}

// One more octet of the wire line; every octet counts towards max_line, a bare CR or a stuffing
// period as much as a letter.
void data_reader::grow_line() {
  ++line_length_;
  if (line_length_ > max_line_) line_too_long_ = true;
}

// One octet inside a line (not CR, which the caller handles).
void data_reader::in_line(char c) {
  auto u = static_cast<unsigned char>(c);
  if (c == '\n') {
    ++facts_.bare_lf;
  } else if (u >= 0x80) {
    ++facts_.eight_bit;
  } else if (c == '\0') {
    ++facts_.nul;
  }
  grow_line();
  emit(c);
  state_ = state::mid;
}

std::size_t data_reader::feed(std::string_view input) {
  std::size_t i = 0;
  for (; i < input.size() && state_ != state::end; ++i) {
    char c = input[i];
    switch (state_) {
      case state::bol:
        if (c == '.') {
          state_ = state::bol_dot;
        } else if (c == '\r') {
          state_ = state::cr;
        } else {
          in_line(c);
        }
        break;
      case state::bol_dot:
        if (c == '\r') {
          state_ = state::bol_dot_cr;
        } else {
          // RFC 5321 §4.5.2: the leading period of a line with other characters is deleted.
          grow_line();  // the removed period was on the wire line
          in_line(c);
        }
        break;
      case state::bol_dot_cr:
        if (c == '\n') {
          state_ = state::end;
        } else {
          // ".\r" followed by something else: the period was stuffing, the CR is bare.
          grow_line();
          ++facts_.bare_cr;
          grow_line();
          emit('\r');
          if (c == '\r') {
            state_ = state::cr;
          } else {
            in_line(c);
          }
        }
        break;
      case state::mid:
        if (c == '\r') {
          state_ = state::cr;
        } else {
          in_line(c);
        }
        break;
      case state::cr:
        if (c == '\n') {
          emit('\r');
          emit('\n');
          end_line();
          state_ = state::bol;
        } else {
          ++facts_.bare_cr;
          grow_line();
          emit('\r');
          if (c != '\r') in_line(c);  // another CR stays in state cr
        }
        break;
      case state::end: break;
    }
  }
  return i;
}

}  // namespace mxlens::receiver
