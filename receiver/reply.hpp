// An SMTP reply: code, enhanced status code (RFC 3463) and text, possibly several lines.
#pragma once

#include <string>
#include <vector>

namespace mxlens::receiver {

struct reply {
  int code = 250;
  std::string enhanced;  // "2.0.0"; empty where RFC 2034 leaves it out (greeting, EHLO/HELO)
  std::vector<std::string> lines;
  bool close = false;  // close the connection after sending (421, QUIT)

  reply() = default;
  reply(int c, std::string e, std::string text, bool close_after = false)
      : code(c), enhanced(std::move(e)), lines{std::move(text)}, close(close_after) {}

  bool positive() const { return code >= 200 && code < 400; }

  // The reply on the wire: "250-first\r\n250 last\r\n", each line with the enhanced code.
  std::string wire() const;
};

}  // namespace mxlens::receiver
