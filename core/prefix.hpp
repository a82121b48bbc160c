// An address prefix a test claims as its sender's ("192.0.2.10", "2001:db8::/64"): the sessions
// from inside it are shown to that test, even those that never reached RCPT. Claims stay narrow,
// so that a test cannot watch a whole network: at most an IPv4 /24 or an IPv6 /56.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mxlens::core {

inline constexpr int widest_v4_prefix = 24;
inline constexpr int widest_v6_prefix = 56;
// The most prefixes one test may claim.
inline constexpr std::size_t most_claims = 4;

struct address_prefix {
  std::array<std::uint8_t, 16> bytes{};  // the network, host bits zero; IPv4 in the first 4
  bool v6 = false;
  int length = 0;

  // "192.0.2.10/32", "2001:db8::/64": the canonical text, as stored and shown.
  std::string text() const;
  // Whether the address (text form, IPv4 or IPv6) is inside the prefix.
  bool contains(std::string_view address) const;

  bool operator==(const address_prefix&) const = default;
};

// "ADDRESS" or "ADDRESS/LENGTH"; nullopt with `problem` set when it is not one, or is wider than
// the widest claim allowed.
std::optional<address_prefix> parse_prefix(std::string_view text, std::string& problem);

}  // namespace mxlens::core
