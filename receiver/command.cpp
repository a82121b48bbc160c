#include "receiver/command.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include "core/text.hpp"

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

// Of a malformed parameter, what a reply repeats.
constexpr std::size_t max_named = 64;

// esmtp-value: %d33-60 / %d62-126, plus UTF-8 (RFC 6531 §3.3).
bool valid_value(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v)
    if (c < 33 || c == '=' || c == 127) return false;
  return true;
}

// A character as a reply names it: quoted when it is printable ASCII, else as \xHH.
std::string named(char c) {
  const auto shown = core::ascii_escaped(std::string_view(&c, 1));
  return shown.size() == 1 ? "'" + shown + "'" : shown;
}

bool alpha_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 5322 §3.2.3 atext, as RFC 5321 §4.1.2 Atom uses it (UTF-8 is handled apart).
bool atext(char c) {
  return alpha_digit(c) ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// The length of the well-formed UTF-8 sequence of a non-ASCII character at s[i] (RFC 6531 §3.3
// UTF8-non-ascii, RFC 3629 §4), or 0 when there is none.
std::size_t utf8_at(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  return n > 0 && s.size() - i >= n && core::is_utf8(s.substr(i, n)) ? n : 0;
}

// RFC 5321 §4.1.3 IPv4-address-literal: Snum 3("." Snum), each Snum 0 to 255.
bool ipv4_literal(std::string_view s) {
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (s.empty() || s.front() != '.') return false;
      s.remove_prefix(1);
    }
    std::size_t n = 0;
    int value = 0;
    while (n < s.size() && n < 4 && s[n] >= '0' && s[n] <= '9') value = value * 10 + (s[n++] - '0');
    if (n == 0 || n > 3 || value > 255) return false;
    s.remove_prefix(n);
  }
  return s.empty();
}

// Groups of 1*4HEXDIG separated by single colons; their count, or -1 when malformed.
int hex_groups(std::string_view s) {
  if (s.empty()) return 0;
  int groups = 0;
  for (;;) {
    std::size_t n = 0;
    while (n < s.size() && hex_digit(s[n])) ++n;
    if (n == 0 || n > 4) return -1;
    ++groups;
    s.remove_prefix(n);
    if (s.empty()) return groups;
    if (s.front() != ':') return -1;
    s.remove_prefix(1);
  }
}

// RFC 5321 §4.1.3 IPv6-addr: IPv6-full (8 groups) or IPv6-comp (at most 6 groups around one
// "::"), or their IPv6v4 forms, whose last 32 bits are an IPv4 address (6 groups, or at most 4).
bool ipv6_literal(std::string_view s) {
  int most = 8;
  if (const auto last = s.rfind(':');
      last != std::string_view::npos && s.find('.', last) != std::string_view::npos) {
    if (!ipv4_literal(s.substr(last + 1))) return false;
    most = 6;
    // Keep a "::" just before the IPv4 part; drop a single separating colon.
    s = s.substr(0, last > 0 && s[last - 1] == ':' ? last + 1 : last);
  }
  const auto gap = s.find("::");
  if (gap == std::string_view::npos) return hex_groups(s) == most;
  if (s.find("::", gap + 1) != std::string_view::npos) return false;
  const int left = hex_groups(s.substr(0, gap));
  const int right = hex_groups(s.substr(gap + 2));
  return left >= 0 && right >= 0 && left + right <= most - 2;
}

// Reads one path from the front of a MAIL or RCPT argument. Each step advances past what it
// read, or returns what is wrong as a reply would say it.
class path_parser {
 public:
  using error = std::optional<std::string>;

  explicit path_parser(std::string_view s) : s_(s) {}

  // Octets read so far: after path(), the whole path, angle brackets included.
  std::size_t at() const { return at_; }

  // RFC 5321 §4.1.2 Reverse-path (is_sender) or Forward-path; the address without the angle
  // brackets and the source route, empty for the null path.
  error path(bool is_sender, std::string& address) {
    if (peek() != '<') return "the address must be in angle brackets: <local-part@domain>";
    ++at_;
    if (peek() == '>') {
      ++at_;
      if (!is_sender) return "a recipient cannot be the null path <>";
      address.clear();
      return std::nullopt;
    }
    if (peek() == '@') {
      if (auto e = source_route()) return e;
    } else if (!is_sender && iequals(s_.substr(at_, postmaster.size()), postmaster) &&
               s_.substr(at_ + postmaster.size(), 1) == ">") {
      // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain, for RCPT only.
      address = std::string(s_.substr(at_, postmaster.size()));
      at_ += postmaster.size() + 1;
      return std::nullopt;
    }
    const auto begin = at_;
    if (auto e = mailbox()) return e;
    address = std::string(s_.substr(begin, at_ - begin));
    if (peek() == '>') {
      ++at_;
      return std::nullopt;
    }
    if (!more()) return "no '>' at the end of the address";
    return "invalid character " + named(peek()) + " in the " +
           (literal_ ? "address literal" : "domain");
  }

 private:
  static constexpr std::string_view postmaster = "Postmaster";

  bool more() const { return at_ < s_.size(); }
  char peek() const { return more() ? s_[at_] : '\0'; }

  // A-d-l ":" (RFC 5321 §4.1.2): "@" Domain *( "," "@" Domain ) ":".
  error source_route() {
    for (;;) {
      ++at_;  // the '@'
      if (auto e = domain("source route")) return e;
      if (peek() == ':') {
        ++at_;
        return std::nullopt;
      }
      if (peek() != ',') {
        if (!more() || peek() == '>')
          return std::string("a source route without the ':' that ends it");
        return "invalid character " + named(peek()) + " in the source route";
      }
      ++at_;
      if (peek() != '@') return "each domain of a source route begins with '@'";
    }
  }

  // Mailbox = Local-part "@" ( Domain / address-literal ).
  error mailbox() {
    if (auto e = peek() == '"' ? quoted_string() : dot_string()) return e;
    if (peek() != '@') {
      if (!more() || peek() == '>') return "no '@' and domain after the local part";
      return "invalid character " + named(peek()) + " in the local part";
    }
    ++at_;
    if (peek() == '[') {
      literal_ = true;
      return address_literal();
    }
    return domain("domain");
  }

  // Dot-string = Atom *("." Atom), with RFC 6531's UTF-8 in atext.
  error dot_string() {
    const auto begin = at_;
    for (;;) {
      const auto atom = at_;
      while (more()) {
        if (atext(peek())) {
          ++at_;
        } else if (static_cast<unsigned char>(peek()) >= 0x80) {
          const auto n = utf8_at(s_, at_);
          if (n == 0) return std::string("bytes that are not UTF-8 in the local part");
          at_ += n;
        } else {
          break;
        }
      }
      if (at_ == atom) {
        if (at_ == begin && peek() == '@') return std::string("the local part is empty");
        if (at_ == begin && peek() == '.') return std::string("the local part begins with '.'");
        if (at_ > begin && peek() == '.') return std::string("two dots in a row in the local part");
        if (at_ > begin && peek() == '@') return std::string("the local part ends with '.'");
        return more() ? "invalid character " + named(peek()) + " in the local part"
                      : "no '>' at the end of the address";
      }
      if (peek() != '.') return std::nullopt;
      ++at_;
    }
  }

  // Quoted-string = DQUOTE *( qtextSMTP / quoted-pairSMTP ) DQUOTE, with UTF-8 in qtextSMTP.
  error quoted_string() {
    ++at_;  // the opening quote
    while (more()) {
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++at_;
        return std::nullopt;
      }
      if (c == '\\') {
        ++at_;
        const auto quoted = static_cast<unsigned char>(peek());
        if (!more() || quoted < 0x20 || quoted > 0x7e)
          return std::string("a backslash in a quoted local part quotes only printable ASCII");
        ++at_;
      } else if (c >= 0x80) {
        const auto n = utf8_at(s_, at_);
        if (n == 0) return std::string("bytes that are not UTF-8 in the quoted local part");
        at_ += n;
      } else if (c < 0x20 || c == 0x7f) {
        return "invalid character " + named(peek()) + " in the quoted local part";
      } else {
        ++at_;
      }
    }
    return std::string("the quoted local part has no closing '\"'");
  }

  // Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str], or an RFC 6531 U-label
  // (non-ASCII letters among them; IDNA2008's finer rules are not checked here).
  error domain(const std::string& where) {
    for (;;) {
      const auto label = at_;
      while (more()) {
        if (alpha_digit(peek()) || peek() == '-') {
          ++at_;
        } else if (static_cast<unsigned char>(peek()) >= 0x80) {
          const auto n = utf8_at(s_, at_);
          if (n == 0) return "bytes that are not UTF-8 in the " + where;
          at_ += n;
        } else {
          break;
        }
      }
      if (at_ == label) {
        if (more() && peek() != '.' && peek() != '>' && peek() != ',' && peek() != ':')
          return "invalid character " + named(peek()) + " in the " + where;
        return "an empty label in the " + where + " (nothing after '@' or a '.', or two dots)";
      }
      if (s_[label] == '-' || s_[at_ - 1] == '-')
        return "a label of the " + where + " begins or ends with '-'";
      if (peek() != '.') return std::nullopt;
      ++at_;
    }
  }

  // RFC 5321 §4.1.3 address-literal: "[" ( IPv4 / "IPv6:" IPv6 / General ) "]".
  error address_literal() {
    const auto close = s_.find(']', at_);
    if (close == std::string_view::npos) return std::string("an address literal without its ']'");
    const auto body = s_.substr(at_ + 1, close - at_ - 1);
    for (const char c : body) {
      // dcontent: printable ASCII but "[", "\\" and "]".
      if (c < 33 || c > 126 || c == '[' || c == '\\')
        return "invalid character " + named(c) + " in the address literal";
    }
    at_ = close + 1;
    constexpr std::string_view ipv6_tag = "IPv6:";
    if (iequals(body.substr(0, ipv6_tag.size()), ipv6_tag)) {
      if (!ipv6_literal(body.substr(ipv6_tag.size())))
        return std::string("the address literal is not an IPv6 address (RFC 5321 4.1.3)");
      return std::nullopt;
    }
    if (const auto colon = body.find(':'); colon != std::string_view::npos) {
      // A General-address-literal's tag must be registered with IANA; IPv6 is the only one.
      return "the address literal tag '" + std::string(body.substr(0, std::min(colon, max_tag))) +
             "' is not registered (RFC 5321 4.1.3)";
    }
    if (!ipv4_literal(body))
      return std::string("the address literal is not an IPv4 address (RFC 5321 4.1.3)");
    return std::nullopt;
  }

  static constexpr std::size_t max_tag = 32;  // of an unknown tag, what a reply repeats

  std::string_view s_;
  std::size_t at_ = 0;
  bool literal_ = false;  // the domain is an address literal
};

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
  path_parser parser(rest);
  const std::string whose = is_sender ? "Bad sender address: " : "Bad recipient address: ";
  if (auto err = parser.path(is_sender, out.address)) return reply{501, bad_address, whose + *err};
  // RFC 5321 §4.5.3.1.3: 256 octets, the angle brackets included.
  if (parser.at() > max_path_length)
    return reply{
        501, bad_address,
        whose + "longer than " + std::to_string(max_path_length) + " octets (RFC 5321 4.5.3.1.3)"};
  rest.remove_prefix(parser.at());

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
      // The reply names the parameter as RFC 5321 §4.2's textstring allows: printable ASCII.
      return reply{501, "5.5.4",
                   "Malformed parameter " + core::ascii_escaped(param.substr(0, max_named))};
    std::string upper_key;
    for (char c : key) upper_key.push_back(upper(c));
    for (const auto& [k, v] : out.params)
      if (k == upper_key) return reply{501, "5.5.4", "Parameter " + upper_key + " given twice"};
    out.params.emplace_back(std::move(upper_key), std::move(value));
  }
  return out;
}

}  // namespace mxlens::receiver
