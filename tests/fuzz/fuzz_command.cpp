// The SMTP command parser (receiver/command.hpp): a command line as the session reads it (LF
// removed, a CR before it too, any other octet kept), split into verb and arguments, and its
// MAIL FROM or RCPT TO path read.
//
// Oracles: the split gives back the line; a path that parses is re-sent as the canonical command
// "FROM:<address> KEY=VALUE…" and parses to the same thing (a source route is dropped once, and
// what is left is a path); an accepted address has the shape of RFC 5321 §4.1.2's Mailbox
// (checked here independently and more simply), within §4.5.3.1.3's 256 octets; a refusal is a
// 501 whose text may go on the wire as it is (RFC 5321 §4.2: textstring is HT, SP and printable
// US-ASCII).
//
// Input: one octet, its low bit choosing RCPT TO (1) or MAIL FROM (0), then the command line.
#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "core/text.hpp"
#include "receiver/command.hpp"
#include "tests/fuzz/oracle.hpp"

using namespace mxlens::receiver;

namespace {

// Names the line when the oracle fails (escaped, only then).
void require(bool ok, const char* what, std::string_view line) {
  if (!ok) mxlens::fuzz::require(false, what, mxlens::core::ascii_escaped(line.substr(0, 300)));
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Dot-string (RFC 5321 §4.1.2) with RFC 6531's UTF-8: atoms of atext or non-ASCII octets (their
// UTF-8 form is checked on the whole address), one dot between two atoms.
bool dot_string(std::string_view s) {
  constexpr std::string_view specials = "!#$%&'*+-/=?^_`{|}~";
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos)
    return false;
  for (unsigned char c : s)
    if (!is_alnum(c) && c < 0x80 && c != '.' &&
        specials.find(static_cast<char>(c)) == specials.npos)
      return false;
  return true;
}

// Quoted-string: DQUOTE *(qtextSMTP / "\" %d32-126) DQUOTE, qtextSMTP %d32-33 / %d35-91 /
// %d93-126 and UTF-8.
bool quoted_string(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  s = s.substr(1, s.size() - 2);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (++i == s.size() || static_cast<unsigned char>(s[i]) < 32 ||
          static_cast<unsigned char>(s[i]) > 126)
        return false;
    } else if (c == '"' || c < 32 || c == 127) {
      return false;
    }
  }
  return true;
}

// Domain: labels of letters, digits, hyphens (not at either end) and UTF-8, one dot apart.
bool domain(std::string_view s) {
  std::size_t start = 0;
  for (;;) {
    const auto dot = s.find('.', start);
    const auto label = s.substr(start, dot == s.npos ? s.npos : dot - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (unsigned char c : label)
      if (!is_alnum(c) && c != '-' && c < 0x80) return false;
    if (dot == s.npos) return true;
    start = dot + 1;
  }
}

// IPv4-address-literal: four Snum of 1 to 3 digits, each at most 255.
bool ipv4(std::string_view s) {
  int parts = 0;
  std::size_t start = 0;
  for (;;) {
    const auto dot = s.find('.', start);
    const auto part = s.substr(start, dot == s.npos ? s.npos : dot - start);
    if (part.empty() || part.size() > 3 || part.find_first_not_of("0123456789") != part.npos ||
        std::stoi(std::string(part)) > 255)
      return false;
    ++parts;
    if (dot == s.npos) return parts == 4;
    start = dot + 1;
  }
}

bool address_literal(std::string_view s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  if (iequal(s.substr(0, 5), "IPv6:")) {
    const std::string v6(s.substr(5));
    unsigned char buf[16];
    // The RFC's IPv6-addr is narrower than inet_pton's; an IPv4 tail may have leading zeros
    // that inet_pton refuses, so only its shape is checked.
    const auto colon = v6.rfind(':');
    if (v6.find('.') != std::string::npos)
      return colon != std::string::npos && ipv4(std::string_view(v6).substr(colon + 1));
    return inet_pton(AF_INET6, v6.c_str(), buf) == 1;
  }
  return ipv4(s);
}

bool mailbox(std::string_view a) {
  const auto at = a.rfind('@');
  if (at == a.npos) return false;
  const auto local = a.substr(0, at), where = a.substr(at + 1);
  const bool local_ok = local.front() == '"' ? quoted_string(local) : dot_string(local);
  return local_ok && (where.front() == '[' ? address_literal(where) : domain(where));
}

// RFC 5321 §4.2 textstring.
bool textstring(std::string_view s) {
  for (unsigned char c : s)
    if (c != '\t' && (c < 32 || c > 126)) return false;
  return true;
}

std::string canonical(std::string_view keyword, const path_command& p) {
  std::string out = std::string(keyword) + ":<" + p.address + ">";
  for (const auto& [k, v] : p.params) out += " " + k + (v.empty() ? "" : "=" + v);
  return out;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool sender = (data[0] & 1) == 0;
  const std::string_view line(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string_view keyword = sender ? "FROM" : "TO";

  // The split: the line without its trailing blanks is the verb, and the arguments after one or
  // more spaces.
  const auto cmd = split_command(line);
  auto stripped = line;
  while (!stripped.empty() && (stripped.back() == ' ' || stripped.back() == '\t'))
    stripped.remove_suffix(1);
  require(iequal(stripped.substr(0, cmd.verb.size()), cmd.verb), "the verb is not the line's",
          line);
  for (char c : cmd.verb)
    require(c != ' ' && (c < 'a' || c > 'z'), "the verb is not uppercased", line);
  auto after = stripped.substr(cmd.verb.size());
  require(after.empty() || after.front() == ' ', "the verb ends before a space", line);
  while (!after.empty() && after.front() == ' ') after.remove_prefix(1);
  require(after == cmd.args, "the arguments are not the rest of the line", line);

  const auto parsed = parse_path_command(cmd.args, keyword, sender);
  if (const auto* r = std::get_if<reply>(&parsed)) {
    require(r->code == 501, "a refusal is not a 501", line);
    require(r->enhanced == "5.5.4" || r->enhanced == (sender ? "5.1.7" : "5.1.3"),
            "a refusal with another enhanced code", line);
    for (const auto& text : r->lines)
      require(textstring(text), "a reply text that is not RFC 5321 textstring", line);
    return 0;
  }
  const auto& p = std::get<path_command>(parsed);
  require(mxlens::core::is_utf8(p.address), "an accepted address that is not UTF-8", line);
  require(p.address.size() + 2 <= max_path_length, "an accepted path over 256 octets", line);
  if (p.address.empty()) {
    require(sender, "a recipient accepted as the null path", line);
  } else if (!sender && iequal(p.address, "postmaster")) {
    // RFC 5321 §4.1.1.3: "<Postmaster>" for RCPT only.
  } else {
    require(mailbox(p.address), "an accepted address that is no Mailbox", line);
  }
  for (std::size_t i = 0; i < p.params.size(); ++i) {
    const auto& [k, v] = p.params[i];
    require(!k.empty() && is_alnum(static_cast<unsigned char>(k[0])), "a parameter keyword", line);
    for (char c : k)
      require((is_alnum(static_cast<unsigned char>(c)) || c == '-') && (c < 'a' || c > 'z'),
              "a parameter keyword", line);
    for (unsigned char c : v)
      require(c > 32 && c != '=' && c != 127, "a parameter value (esmtp-value)", line);
    for (std::size_t j = 0; j < i; ++j)
      require(p.params[j].first != k, "a parameter accepted twice", line);
  }

  // Round trip: the canonical form of what was read reads the same.
  const auto again = parse_path_command(canonical(keyword, p), keyword, sender);
  const auto* q = std::get_if<path_command>(&again);
  require(q != nullptr, "the canonical form of an accepted command is refused", line);
  require(q->address == p.address && q->params == p.params,
          "the canonical form of an accepted command reads otherwise", line);
  return 0;
}
