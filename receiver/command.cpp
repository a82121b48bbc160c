#include "receiver/command.hpp"

#include <cctype>

namespace mxlens::receiver {

namespace {

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (upper(a[i]) != upper(b[i])) return false;
  return true;
}

// RFC 5321 §4.1.2 esmtp-keyword: ALPHA / DIGIT followed by ALPHA / DIGIT / "-".
bool valid_keyword(std::string_view k) {
  if (k.empty() || !std::isalnum(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  return true;
}

// esmtp-value: %d33-60 / %d62-126, plus UTF-8 (RFC 6531 §3.3).
bool valid_value(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v)
    if (c < 33 || c == '=' || c == 127) return false;
  return true;
}

}  // namespace

bool has_non_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

command_line split_command(std::string_view line) {
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  auto sp = line.find(' ');
  command_line out;
  out.verb.reserve(sp == std::string_view::npos ? line.size() : sp);
  for (char c : line.substr(0, sp)) out.verb.push_back(upper(c));
  if (sp != std::string_view::npos) {
    auto rest = line.substr(sp + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    out.args = std::string(rest);
  }
  return out;
}

std::variant<path_command, reply> parse_path_command(std::string_view args,
                                                     std::string_view keyword, bool is_sender) {
  const char* bad_address = is_sender ? "5.1.7" : "5.1.3";
  const std::string usage =
      is_sender ? "Syntax: MAIL FROM:<address> [parameters]" : "Syntax: RCPT TO:<address>";
  auto colon = args.find(':');
  if (colon == std::string_view::npos || !iequals(args.substr(0, colon), keyword))
    return reply{501, "5.5.4", usage};
  auto rest = args.substr(colon + 1);
  // RFC 5321 has no space after the colon; many clients send one, and it harms nothing.
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);

  path_command out;
  std::string_view path;
  if (!rest.empty() && rest.front() == '<') {
    // Find the closing '>' outside quoted strings (a quoted local part may contain '>').
    bool quoted = false;
    std::size_t end = std::string_view::npos;
    for (std::size_t i = 1; i < rest.size(); ++i) {
      char c = rest[i];
      if (quoted && c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (!quoted && c == '>') {
        end = i;
        break;
      }
    }
    if (end == std::string_view::npos) return reply{501, bad_address, "Unbalanced '<' in address"};
    path = rest.substr(1, end - 1);
    rest.remove_prefix(end + 1);
  } else {
    // Without angle brackets (RFC 821 clients): accept the address up to the first space.
    auto sp = rest.find(' ');
    path = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
    out.bracketed = false;
    if (path.empty()) return reply{501, "5.5.4", usage};
  }
  if (path.size() > max_path_length)
    return reply{501, bad_address, "Address longer than 256 octets (RFC 5321 4.5.3.1.3)"};
  // RFC 5321 §4.1.1.3: a source route (@a,@b:user@c) must be accepted and may be ignored.
  if (!path.empty() && path.front() == '@') {
    auto c = path.find(':');
    if (c == std::string_view::npos) return reply{501, bad_address, "Bad source route"};
    path.remove_prefix(c + 1);
  }
  bool quoted = false;
  for (unsigned char c : path) {
    if (c == '"') quoted = !quoted;
    if (!quoted && (c <= ' ' || c == 127))
      return reply{501, bad_address, "Invalid character in address"};
  }
  if (!path.empty()) {
    auto at = path.rfind('@');
    bool postmaster = !is_sender && iequals(path, "postmaster");  // RFC 5321 §4.5.1
    if (!postmaster && (at == std::string_view::npos || at == 0 || at + 1 == path.size()))
      return reply{501, bad_address, "Address must be local-part@domain"};
  } else if (!is_sender) {
    return reply{501, bad_address, "A recipient cannot be empty"};
  }
  out.address = std::string(path);

  // Parameters: SP-separated keyword[=value].
  while (!rest.empty()) {
    if (rest.front() != ' ') return reply{501, "5.5.4", "Expected a space before parameters"};
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    auto sp = rest.find(' ');
    auto param = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
    auto eq = param.find('=');
    auto key = param.substr(0, eq);
    std::string value =
        eq == std::string_view::npos ? std::string() : std::string(param.substr(eq + 1));
    if (!valid_keyword(key) || (eq != std::string_view::npos && !valid_value(value)))
      return reply{501, "5.5.4", "Malformed parameter " + std::string(param.substr(0, 64))};
    std::string upper_key;
    for (char c : key) upper_key.push_back(upper(c));
    for (const auto& [k, v] : out.params)
      if (k == upper_key) return reply{501, "5.5.4", "Parameter " + upper_key + " given twice"};
    out.params.emplace_back(std::move(upper_key), std::move(value));
  }
  return out;
}

}  // namespace mxlens::receiver
