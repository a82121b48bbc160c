#include "core/prefix.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace mxlens::core {

namespace {

// The address's bytes, and whether it is IPv6; false when it is neither form.
bool address_bytes(std::string_view text, std::array<std::uint8_t, 16>& out, bool& v6) {
  const std::string s(text);
  out.fill(0);
  if (inet_pton(AF_INET, s.c_str(), out.data()) == 1) {
    v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) {
    v6 = true;
    return true;
  }
  return false;
}

}  // namespace

std::string address_prefix::text() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(length);
}

bool address_prefix::contains(std::string_view address) const {
  std::array<std::uint8_t, 16> a{};
  bool is_v6 = false;
  if (!address_bytes(address, a, is_v6) || is_v6 != v6) return false;
  for (int bit = 0; bit < length; ++bit) {
    const auto mask = static_cast<std::uint8_t>(0x80 >> (bit % 8));
    if ((a[static_cast<std::size_t>(bit / 8)] & mask) !=
        (bytes[static_cast<std::size_t>(bit / 8)] & mask))
      return false;
  }
  return true;
}

std::optional<address_prefix> parse_prefix(std::string_view text, std::string& problem) {
  address_prefix p;
  const auto slash = text.find('/');
  if (!address_bytes(text.substr(0, slash), p.bytes, p.v6)) {
    problem = "'" + std::string(text) + "' is not an IP address or prefix";
    return std::nullopt;
  }
  const int full = p.v6 ? 128 : 32;
  p.length = full;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p.length);
    if (ec != std::errc() || end != digits.data() + digits.size() || p.length < 0 ||
        p.length > full) {
      problem =
          "'" + std::string(text) + "': the prefix length must be 0 to " + std::to_string(full);
      return std::nullopt;
    }
  }
  const int widest = p.v6 ? widest_v6_prefix : widest_v4_prefix;
  if (p.length < widest) {
    problem = "'" + std::string(text) + "' is wider than a test may claim (at most /" +
              std::to_string(widest) + ")";
    return std::nullopt;
  }
  for (int bit = p.length; bit < full; ++bit)  // the network: host bits cleared
    p.bytes[static_cast<std::size_t>(bit / 8)] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  return p;
}

}  // namespace mxlens::core
