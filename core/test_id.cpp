#include "core/test_id.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <stdexcept>

#include <sys/random.h>

namespace mxlens::core {

namespace {

constexpr std::string_view base32_alphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::size_t id_bytes = 10;  // 80 bits -> 16 base32 characters

}  // namespace

std::string random_id() {
  // The kernel's CSPRNG, in one call: test ids are capabilities (whoever knows one reads its
  // reports). A std::random_device made per id took about 1% of the server's CPU under load.
  std::array<std::uint8_t, id_bytes> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");
    }
    got += static_cast<std::size_t>(n);
  }
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (auto b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(base32_alphabet[(buffer >> (bits - 5)) & 0x1f]);
      bits -= 5;
    }
  }
  return out;
}

bool is_valid_test_id(std::string_view id) {
  if (id.size() < min_test_id_length || id.size() > max_test_id_length) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::optional<mailbox> split_mailbox(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
  return mailbox{std::string(address.substr(0, at)), lowercase(address.substr(at + 1))};
}

std::optional<std::string> test_id_of_local_part(std::string_view local) {
  auto plus = local.find('+');
  auto id = lowercase(local.substr(0, plus));
  if (!is_valid_test_id(id)) return std::nullopt;
  return id;
}

}  // namespace mxlens::core
