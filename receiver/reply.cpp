#include "receiver/reply.hpp"

namespace mxlens::receiver {

std::string reply::wire() const {
  std::string out;
  const auto code_text = std::to_string(code);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += code_text;
    out += (i + 1 < lines.size()) ? '-' : ' ';
    if (!enhanced.empty()) {
      out += enhanced;
      out += ' ';
    }
    out += lines[i];
    out += "\r\n";
  }
  if (lines.empty()) out = code_text + (enhanced.empty() ? "" : " " + enhanced) + "\r\n";
  return out;
}

}  // namespace mxlens::receiver
