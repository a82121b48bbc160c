#include "core/text.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/system/system_error.hpp>
#include <charconv>
#include <cmath>

namespace mxlens::core {

namespace json = boost::json;

namespace {

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629 §4), or 0 when there is none.
std::size_t sequence_at(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto left = s.size() - i;
  const auto tail = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return tail(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!tail(1) || !tail(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // a surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!tail(1) || !tail(2) || !tail(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

constexpr char hex[] = "0123456789ABCDEF";

// The C1 control at s[i] (U+0080 to U+009F: C2 80 to C2 9F in UTF-8), if there is one.
bool c1_at(std::string_view s, std::size_t i) {
  return static_cast<unsigned char>(s[i]) == 0xC2 && i + 1 < s.size() &&
         static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
         static_cast<unsigned char>(s[i + 1]) <= 0x9F;
}

void append_hex_byte(std::string& out, unsigned char c) {
  out += "\\x";
  out += hex[c >> 4];
  out += hex[c & 15];
}

// A JSON string literal of the bytes, printable: what printable() shows, with JSON's own escapes
// (its \xHH text thus reads "\\xHH" in the literal).
void write_string(std::string& out, std::string_view bytes) {
  out += '"';
  const auto text = printable(bytes);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c1_at(text, i)) {
      out += "\\u00";
      out += hex[(text[i + 1] >> 4) & 15];
      out += hex[text[i + 1] & 15];
      ++i;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += hex[(c >> 4) & 15];
          out += hex[c & 15];
        } else {
          out += c;  // octets of UTF-8 sequences included
        }
    }
  }
  out += '"';
}

template <class N>
void write_number(std::string& out, N n) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

void write(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: out += "null"; break;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case json::kind::int64: write_number(out, v.get_int64()); break;
    case json::kind::uint64: write_number(out, v.get_uint64()); break;
    case json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) out += "null";  // JSON has no NaN or infinity
      else write_number(out, d);
      break;
    }
    case json::kind::string: write_string(out, v.get_string()); break;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write(out, e);
      }
      out += ']';
      break;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.get_object()) {
        if (!first) out += ',';
        first = false;
        write_string(out, k);
        out += ':';
        write(out, e);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string printable(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    const auto n = sequence_at(bytes, i);
    if (n == 0) {
      append_hex_byte(out, static_cast<unsigned char>(bytes[i++]));
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string terminal_safe(std::string_view bytes) {
  const auto shown = printable(bytes);
  std::string out;
  out.reserve(shown.size());
  for (std::size_t i = 0; i < shown.size();) {
    const auto n = sequence_at(shown, i);
    const auto b = static_cast<unsigned char>(shown[i]);
    char32_t cp = b;
    if (n == 2) cp = ((b & 0x1Fu) << 6) | (static_cast<unsigned char>(shown[i + 1]) & 0x3Fu);
    if (n == 3)
      cp = ((b & 0x0Fu) << 12) | ((static_cast<unsigned char>(shown[i + 1]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(shown[i + 2]) & 0x3Fu);
    if (n == 1 && (cp < 0x20 || cp == 0x7F)) {
      append_hex_byte(out, b);
    } else if ((cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
               (cp >= 0x2066 && cp <= 0x2069)) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += hex[(cp >> shift) & 15];
    } else {
      out.append(shown, i, n);
    }
    i += n;
  }
  return out;
}

bool is_utf8(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size();) {
    const auto n = sequence_at(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ascii_escaped(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F) {
      out += ch;
    } else {
      append_hex_byte(out, c);
    }
  }
  return out;
}

std::string non_ascii_item(std::string_view text, char separator) {
  const auto ascii = [](char c) { return static_cast<unsigned char>(c) < 0x80; };
  const auto at =
      static_cast<std::size_t>(std::find_if_not(text.begin(), text.end(), ascii) - text.begin());
  if (at == text.size()) return {};
  auto begin = text.rfind(separator, at);
  begin = begin == std::string_view::npos ? 0 : begin + 1;
  auto end = std::min(text.find(separator, at), text.size());
  begin = std::min(text.find_first_not_of(" \t", begin), at);
  end = std::max(text.find_last_not_of(" \t", end - 1) + 1, at + 1);
  const auto item = text.substr(begin, end - begin);
  const auto bad = at - begin;  // the first byte that is not ASCII, in the item
  const auto run_end = static_cast<std::size_t>(
      std::find_if(item.begin() + static_cast<std::ptrdiff_t>(bad), item.end(), ascii) -
      item.begin());
  constexpr std::size_t around = 16;  // characters kept on either side of the bytes
  const auto from = bad > around ? bad - around : 0;
  const auto to = std::min(item.size(), run_end + around);
  std::string out;
  if (from > 0) {
    const auto eq = item.find('=');
    if (eq < from) out = ascii_escaped(item.substr(0, eq + 1));
    out += "...";
  }
  out += ascii_escaped(item.substr(from, to - from));
  if (to < item.size()) out += "...";
  return out;
}

std::string printable_json(const json::value& v) {
  std::string out;
  write(out, v);
  return out;
}

json::value parse_stored(std::string_view text) {
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  boost::system::error_code ec;
  auto v = json::parse(text, ec, {}, options);
  if (ec) throw boost::system::system_error(ec);
  return v;
}

}  // namespace mxlens::core
