#include "analyzers/spf/macro.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace mxlens::analyzers::spf {

namespace {

constexpr std::string_view letters = "slodiphcrtv";
constexpr std::string_view explanation_letters = "crt";  // §7.1: "exp" text only
constexpr std::string_view delimiters = ".-+,/_=";
// A transformer keeps at most this many parts; a larger one keeps them all (§7.3), so its value
// is read no further.
constexpr std::size_t max_parts = 1000;

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }
bool digit(char c) { return c >= '0' && c <= '9'; }

// §12: macro-literal = %x21-24 / %x26-7E; an explanation has spaces between its macro-strings.
bool literal(char c, macro_place place) {
  return (c >= 0x21 && c <= 0x7e && c != '%') || (c == ' ' && place == macro_place::explanation);
}

// The body of "%{...}" from `at` (the letter), to the closing brace; a fault or nothing.
macro_fault macro_body(std::string_view text, std::size_t at, macro_place place,
                       std::size_t& close) {
  if (at >= text.size()) return {"a %{ at the end", at - 2};
  const char letter = lower(text[at]);
  if (letters.find(letter) == std::string_view::npos)
    return {"an invalid macro letter '" + std::string(1, text[at]) + "'", at};
  if (place == macro_place::domain_spec && explanation_letters.find(letter) != std::string::npos)
    return {"%{" + std::string(1, text[at]) + "} is allowed only in an explanation (RFC 7208 §7.1)",
            at};
  std::size_t i = at + 1;
  const std::size_t digits = i;
  while (i < text.size() && digit(text[i])) ++i;
  if (i > digits && text.substr(digits, i - digits).find_first_not_of('0') == std::string::npos)
    return {"a transformer of 0 parts (RFC 7208 §7.1: it must be nonzero)", digits};
  if (i < text.size() && lower(text[i]) == 'r') ++i;
  while (i < text.size() && delimiters.find(text[i]) != std::string_view::npos) ++i;
  if (i >= text.size() || text[i] != '}') return {"an unterminated or malformed macro", at - 2};
  close = i;
  return {};
}

std::vector<std::string> split(const std::string& value, std::string_view delims) {
  std::vector<std::string> parts(1);
  for (char c : value) {
    if (delims.find(c) != std::string_view::npos) parts.emplace_back();
    else parts.back() += c;
  }
  return parts;
}

// %{i} of an IPv6 client: its 32 nibbles, dot-separated (§7.3).
std::string nibbles(const std::string& ip) {
  unsigned char b[16];
  if (inet_pton(AF_INET6, ip.c_str(), b) != 1) return ip;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : b) {
    if (!out.empty()) out += '.';
    out += hex[byte >> 4];
    out += '.';
    out += hex[byte & 0xf];
  }
  return out;
}

bool v6(const std::string& ip) { return ip.find(':') != std::string::npos; }

std::string value_of(char letter, const macro_context& c) {
  switch (letter) {
    case 's': return c.sender;
    case 'l': return c.local_part;
    case 'o': return c.sender_domain;
    case 'd': return c.domain;
    case 'i': return v6(c.client_ip) ? nibbles(c.client_ip) : c.client_ip;
    case 'p': return c.validated_name ? c.validated_name() : "unknown";
    case 'h': return c.helo;
    case 'c': return c.client_ip;
    case 'r': return c.receiver;
    case 't': return std::to_string(c.now);
    case 'v': return v6(c.client_ip) ? "ip6" : "in-addr";
    default: return {};
  }
}

// §7.3: uppercase macro letters are URL-escaped (RFC 3986 §2.3 unreserved characters stay).
std::string url_escaped(const std::string& s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (std::isalnum(u) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0xf];
    }
  }
  return out;
}

// One "%{...}" whose letter is text[at], closed at `close`.
std::string expand_macro(std::string_view text, std::size_t at, std::size_t close,
                         const macro_context& c) {
  const char letter = text[at];
  std::size_t i = at + 1;
  std::size_t keep = 0;
  for (; i < close && digit(text[i]); ++i)
    keep = std::min(max_parts, keep * 10 + static_cast<std::size_t>(text[i] - '0'));
  const bool reverse = i < close && lower(text[i]) == 'r';
  if (reverse) ++i;
  const std::string_view delims = i < close ? text.substr(i, close - i) : ".";
  auto parts = split(value_of(lower(letter), c), delims);
  if (reverse) std::reverse(parts.begin(), parts.end());
  // §7.3: the DIGIT keeps that many right-hand parts, after the reversal.
  if (keep > 0 && keep < parts.size())
    parts.erase(parts.begin(), parts.end() - static_cast<std::ptrdiff_t>(keep));
  std::string out;
  for (std::size_t k = 0; k < parts.size(); ++k) out += (k ? "." : "") + parts[k];
  return std::isupper(static_cast<unsigned char>(letter)) ? url_escaped(out) : out;
}

}  // namespace

macro_fault macro_error(std::string_view text, macro_place place) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (literal(text[i], place)) continue;
    if (text[i] != '%') return {"a character no macro-string may hold", i};
    // §7.1: "%" is followed by "{", "%", "_" or "-", and by nothing else.
    if (i + 1 >= text.size()) return {"a % at the end", i};
    const char next = text[i + 1];
    if (next == '%' || next == '_' || next == '-') {
      ++i;
      continue;
    }
    if (next != '{')
      return {"a % followed by '" + std::string(1, next) + "' (only {, %, _ and - may follow)", i};
    std::size_t close = 0;
    if (auto f = macro_body(text, i + 2, place, close); !f.error.empty()) return f;
    i = close;
  }
  return {};
}

std::string expand(std::string_view text, const macro_context& c) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%' || i + 1 >= text.size()) {
      out += text[i];
      continue;
    }
    const char next = text[++i];
    if (next == '%') out += '%';
    else if (next == '_') out += ' ';
    else if (next == '-') out += "%20";
    else {
      const std::size_t close = text.find('}', i);
      if (close == std::string_view::npos) break;  // not a macro-string macro_error() accepted
      out += expand_macro(text, i + 1, close, c);
      i = close;
    }
  }
  return out;
}

}  // namespace mxlens::analyzers::spf
