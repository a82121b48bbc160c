// Test ids and test addresses. A test id is 16 lowercase base32 characters (80 random bits);
// its address is <id>@<domain>, and <id>+anything@<domain> belongs to the same test.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mxlens::core {

// Shortest and longest test id accepted (report.schema.json: ^[a-z0-9]{8,40}$).
inline constexpr std::size_t min_test_id_length = 8;
inline constexpr std::size_t max_test_id_length = 40;

// A fresh id from the operating system's random source: 80 bits, lowercase base32 (RFC 4648).
// Used for test ids and session ids alike.
std::string random_id();
inline std::string new_test_id() { return random_id(); }

bool is_valid_test_id(std::string_view id);

struct mailbox {
  std::string local;   // as written
  std::string domain;  // lowercased
};

// Splits local@domain at the last '@'. Quoted local parts are kept as written.
std::optional<mailbox> split_mailbox(std::string_view address);

// The test id a recipient local part names: the part before the first '+', lowercased, if it is
// a valid test id; nothing otherwise.
std::optional<std::string> test_id_of_local_part(std::string_view local);

std::string lowercase(std::string_view s);
// Without leading and trailing spaces, tabs, CRs and LFs.
std::string trim(std::string_view s);

}  // namespace mxlens::core
