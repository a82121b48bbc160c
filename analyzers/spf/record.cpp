#include "analyzers/spf/record.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "analyzers/spf/macro.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"

namespace mxlens::analyzers::spf {

namespace {

constexpr std::string_view version = "v=spf1";
constexpr std::size_t max_label = 63;  // RFC 1035 §2.3.4

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

// §12: toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool top_label(std::string_view l) {
  if (l.empty() || !std::all_of(l.begin(), l.end(), [](char c) { return alnum(c) || c == '-'; }))
    return false;
  if (l.find('-') != std::string_view::npos) return alnum(l.front()) && alnum(l.back());
  return std::any_of(l.begin(), l.end(), alpha);
}

// The end of the last macro-expand in a macro-string macro_error() accepted (0 for none).
std::size_t last_macro_end(std::string_view s) {
  std::size_t end = 0;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] != '%') continue;
    i = s[i + 1] == '{' ? s.find('}', i) : i + 1;
    end = i + 1;
  }
  return end;
}

// §7.1: domain-spec = macro-string domain-end, domain-end = ( "." toplabel [ "." ] ) /
// macro-expand. A fault's position is within `spec`.
macro_fault domain_spec_error(std::string_view spec) {
  if (spec.empty()) return {"an empty domain-spec", 0};
  if (auto f = macro_error(spec, macro_place::domain_spec); !f.error.empty()) return f;
  const std::size_t tail = last_macro_end(spec);
  if (tail == spec.size()) return {};
  std::string_view literal = spec.substr(tail);
  if (literal.back() == '.') literal.remove_suffix(1);
  const auto dot = literal.rfind('.');
  if (dot == std::string_view::npos)
    return {"the domain-spec ends in neither \".\" and a top label nor a macro (RFC 7208 §7.1)", 0};
  if (!top_label(literal.substr(dot + 1)))
    return {"\"" + std::string(literal.substr(dot + 1)) +
                "\" is no top label (all-numeric, or not letters, digits and inner hyphens; "
                "RFC 7208 §7.1)",
            tail + dot + 1};
  return {};
}

// §12: ip4-cidr-length = "/" ( "0" / %x31-39 0*1DIGIT ), ip6-cidr-length likewise up to 128.
// Reads "/N" at `at`; nullopt for a malformed or too large length.
std::optional<int> cidr(std::string_view s, std::size_t& at, int max) {
  if (at >= s.size() || s[at] != '/') return std::nullopt;
  std::size_t i = at + 1;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  const auto digits = s.substr(at + 1, i - at - 1);
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
    return std::nullopt;
  const int v = std::stoi(std::string(digits));
  if (v > max) return std::nullopt;
  at = i;
  return v;
}

// §12: ip4-network = qnum "." qnum "." qnum "." qnum, qnum being 0-255 without a leading zero.
bool ip4_network(std::string_view s) {
  int parts = 0;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = std::min(s.find('.', start), s.size());
    const auto q = s.substr(start, end - start);
    if (q.empty() || q.size() > 3 || (q.size() > 1 && q[0] == '0') ||
        !std::all_of(q.begin(), q.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(q)) > 255)
      return false;
    ++parts;
    start = end + 1;
  }
  return parts == 4;
}

bool ip6_network(const std::string& s) {
  unsigned char b[16];
  return inet_pton(AF_INET6, s.c_str(), b) == 1;
}

// Where the dual-cidr-length that ends a or mx starts (§5.6): "/N", "//N" or "/N//N" at the very
// end, from `from` on; the end of `s` when there is none. Read from the right, because a
// domain-spec may hold a "/" itself (macro-literal is any visible character but "%").
std::size_t cidr_suffix(std::string_view s, std::size_t from) {
  const auto slash_digits = [&](std::size_t end) {  // the "/" of a "/DIGITS" ending at `end`
    std::size_t i = end;
    while (i > from && std::isdigit(static_cast<unsigned char>(s[i - 1]))) --i;
    return i == end || i == from || s[i - 1] != '/' ? std::string_view::npos : i - 1;
  };
  const auto last = slash_digits(s.size());
  if (last == std::string_view::npos) return s.size();
  if (last == from || s[last - 1] != '/') return last;
  const auto v4 = slash_digits(last - 1);  // "//N" is the IPv6 length; an IPv4 one may precede it
  return v4 == std::string_view::npos ? last - 1 : v4;
}

void fail(term& t, std::string why, std::size_t offset) {
  t.error = std::move(why);
  t.error_position = t.position + offset;
}

// ":" domain-spec from `at`; required or optional.
void read_domain_spec(term& t, std::string_view spec, std::size_t at) {
  t.domain_spec = std::string(spec);
  if (auto f = domain_spec_error(spec); !f.error.empty()) return fail(t, f.error, at + f.position);
  // Written without a macro, it is the name asked for: one that cannot be (an empty or long
  // label) is the record's syntax error, wherever the term stands (§4.6).
  if (spec.find('%') == std::string_view::npos)
    if (const auto why = target_error(spec); !why.empty())
      fail(t, "a domain-spec that is " + why, at);
}

// a and mx (§5.3, §5.4): [ ":" domain-spec ] [ dual-cidr-length ].
void read_host_mechanism(term& t, std::string_view s, std::size_t at) {
  const auto end = cidr_suffix(s, at);
  if (at < s.size() && s[at] == ':') {
    read_domain_spec(t, s.substr(at + 1, end - at - 1), at + 1);
    if (!t.error.empty()) return;
    at = end;
  }
  if (at != end) return fail(t, "text after the mechanism's name", at);
  // dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]
  if (at < s.size() && s.substr(at, 2) != "//") {
    auto v = cidr(s, at, 32);
    if (!v) return fail(t, "a malformed IPv4 CIDR length (0 to 32, no leading zero)", at);
    t.cidr4 = *v;
  }
  if (at < s.size()) {
    ++at;  // the first "/" of "//"
    auto v = cidr(s, at, 128);
    if (!v) return fail(t, "a malformed IPv6 CIDR length (0 to 128, no leading zero)", at);
    t.cidr6 = *v;
  }
  if (at < s.size()) fail(t, "text after the CIDR length", at);
}

// ip4 and ip6 (§5.6): ":" network [ cidr-length ].
void read_network(term& t, std::string_view s, std::size_t at, bool v4) {
  if (at >= s.size() || s[at] != ':') return fail(t, "no address after the mechanism", at);
  const auto slash = std::min(s.find('/', at), s.size());
  t.network = std::string(s.substr(at + 1, slash - at - 1));
  if (v4 ? !ip4_network(t.network) : !ip6_network(t.network))
    return fail(t, v4 ? "not an IPv4 address" : "not an IPv6 address", at + 1);
  if (slash == s.size()) return;
  std::size_t i = slash;
  auto v = cidr(s, i, v4 ? 32 : 128);
  if (!v || i != s.size())
    return fail(t,
                v4 ? "a malformed IPv4 CIDR length (0 to 32, no leading zero)"
                   : "a malformed IPv6 CIDR length (0 to 128, no leading zero)",
                slash);
  (v4 ? t.cidr4 : t.cidr6) = *v;
}

void read_mechanism(term& t, std::string_view s) {
  std::size_t at = 0;
  if (std::string_view("+-~?").find(s[0]) != std::string_view::npos) t.qualifier = s[at++];
  const auto name_end = std::min(s.find_first_of(":/", at), s.size());
  const std::string name = core::lowercase(std::string(s.substr(at, name_end - at)));
  static const std::pair<std::string_view, term_kind> names[] = {
      {"all", term_kind::all}, {"include", term_kind::include}, {"a", term_kind::a},
      {"mx", term_kind::mx},   {"ptr", term_kind::ptr},         {"ip4", term_kind::ip4},
      {"ip6", term_kind::ip6}, {"exists", term_kind::exists}};
  const auto* found = std::find_if(std::begin(names), std::end(names),
                                   [&](const auto& n) { return n.first == name; });
  if (found == std::end(names)) return fail(t, "an unknown mechanism", 0);
  t.kind = found->second;
  at = name_end;
  switch (t.kind) {
    case term_kind::all:
      if (at < s.size()) fail(t, "text after all", at);
      break;
    case term_kind::include:
    case term_kind::exists:
      if (at >= s.size() || s[at] != ':') return fail(t, "no domain-spec after the mechanism", at);
      read_domain_spec(t, s.substr(at + 1), at + 1);
      break;
    case term_kind::ptr:
      if (at < s.size() && s[at] != ':') return fail(t, "text after ptr", at);
      if (at < s.size()) read_domain_spec(t, s.substr(at + 1), at + 1);
      break;
    case term_kind::a:
    case term_kind::mx: read_host_mechanism(t, s, at); break;
    case term_kind::ip4:
    case term_kind::ip6: read_network(t, s, at, t.kind == term_kind::ip4); break;
    default: break;
  }
}

// §12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
bool modifier_name(std::string_view n) {
  return !n.empty() && alpha(n[0]) && std::all_of(n.begin(), n.end(), [](char c) {
    return alnum(c) || c == '-' || c == '_' || c == '.';
  });
}

void read_modifier(term& t, std::string_view s, std::size_t eq) {
  const auto name = s.substr(0, eq);
  if (!modifier_name(name)) return fail(t, "an invalid modifier name", 0);
  const std::string lower = core::lowercase(std::string(name));
  const auto value = s.substr(eq + 1);
  if (lower == "redirect" || lower == "exp") {
    t.kind = lower == "exp" ? term_kind::exp : term_kind::redirect;
    return read_domain_spec(t, value, eq + 1);
  }
  // §6: an unknown modifier is ignored, but its value must still be a macro-string (§12).
  t.kind = term_kind::unknown;
  t.domain_spec = std::string(value);
  if (auto f = macro_error(value, macro_place::explanation); !f.error.empty())
    fail(t, f.error, eq + 1 + f.position);
}

// §4.6.1, §12: the record's grammar is printable ASCII and spaces.
std::optional<std::size_t> bad_byte(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x21 || c > 0x7e) return i;
  }
  return std::nullopt;
}

term read_term(std::string_view s, std::size_t position) {
  term t;
  t.text = std::string(s);
  t.position = position;
  if (auto bad = bad_byte(s)) {
    const bool high = static_cast<unsigned char>(s[*bad]) >= 0x80;
    fail(t,
         std::string(high ? "a byte that is not ASCII" : "a control character") + " in " +
             core::ascii_escaped(s),
         *bad);
    return t;
  }
  const auto eq = s.find('=');
  if (eq != std::string_view::npos && eq < std::min(s.find_first_of(":/"), s.size()))
    read_modifier(t, s, eq);
  else read_mechanism(t, s);
  return t;
}

}  // namespace

bool term::queries_dns() const {
  switch (kind) {
    case term_kind::include:
    case term_kind::a:
    case term_kind::mx:
    case term_kind::ptr:
    case term_kind::exists:
    case term_kind::redirect: return true;
    default: return false;
  }
}

const term* record::modifier(term_kind k) const {
  const auto it = std::find_if(terms.begin(), terms.end(),
                               [&](const term& t) { return t.kind == k && t.error.empty(); });
  return it == terms.end() ? nullptr : &*it;
}

bool is_spf_record(std::string_view txt) {
  if (txt.size() < version.size()) return false;
  if (core::lowercase(std::string(txt.substr(0, version.size()))) != version) return false;
  return txt.size() == version.size() || txt[version.size()] == ' ';
}

record parse_record(std::string_view text) {
  record r;
  bool redirect = false, exp = false;
  std::size_t at = version.size();
  while (at < text.size()) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    const auto end = std::min(text.find(' ', at), text.size());
    term t = read_term(text.substr(at, end - at), at);
    // §6: redirect and exp each appear at most once in a record.
    bool& seen = t.kind == term_kind::redirect ? redirect : exp;
    if (t.error.empty() && (t.kind == term_kind::redirect || t.kind == term_kind::exp)) {
      if (seen)
        fail(t,
             "a second " + std::string(t.kind == term_kind::exp ? "exp" : "redirect") +
                 " modifier (RFC 7208 §6: at most one)",
             0);
      seen = true;
    }
    if (!t.error.empty() && r.error.empty()) {
      // A byte error names the term already, escaped.
      r.error = bad_byte(t.text) ? t.error : t.error + " in " + core::ascii_escaped(t.text);
      r.error_position = t.error_position;
    }
    r.terms.push_back(std::move(t));
    at = end;
  }
  return r;
}

std::string target_error(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return "an empty name";
  std::size_t labels = 0;
  std::string_view last;
  for (std::size_t start = 0; start <= name.size();) {
    const auto end = std::min(name.find('.', start), name.size());
    last = name.substr(start, end - start);
    if (last.empty()) return "an empty label";
    if (last.size() > max_label) return "a label longer than 63 octets";
    ++labels;
    start = end + 1;
  }
  if (labels < 2) return "a single label";
  if (std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return "a name whose top label is all-numeric";
  return {};
}

bool usable_domain(std::string_view name) {
  if (!target_error(name).empty()) return false;
  if (name.back() == '.') name.remove_suffix(1);
  return top_label(name.substr(name.rfind('.') + 1));
}

}  // namespace mxlens::analyzers::spf
