// RFC 5321 §4.4:
//   Stamp     = From-domain By-domain Opt-info [CFWS] ";" FWS date-time
//   Opt-info  = [Via] [With] [ID] [For] [Additional-Registered-Clauses]
// read leniently: clauses in any order or missing, a `with` of several words (Microsoft's
// "Microsoft SMTP Server"), Exim's unregistered `tls CIPHER` clause, and the TLS each writer puts
// in a comment of its own shape. The value is cut before it is read, so any field costs at most
// max_value octets of work.
#include "analyzers/message/received.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "analyzers/message/message.hpp"
#include "core/json.hpp"
#include "core/test_id.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers::message {

namespace json = boost::json;

namespace {

// Real Received values are a few hundred octets; a longer one is read up to here.
constexpr std::size_t max_value = 8u << 10;

struct token {
  enum kind { word, comment, semicolon } type;
  std::string_view text;  // a comment without its outer parentheses
};

// RFC 5322 §3.2.2: comments nest and a backslash quotes the next character; an unterminated
// comment runs to the end. Quoted strings stay inside their word.
std::vector<token> tokens(std::string_view v) {
  std::vector<token> out;
  std::size_t i = 0;
  while (i < v.size()) {
    const char c = v[i];
    if (c == ' ' || c == '\t') {
      ++i;
    } else if (c == ';') {
      out.push_back({token::semicolon, v.substr(i, 1)});
      ++i;
    } else if (c == '(') {
      const std::size_t start = ++i;
      int depth = 1;
      for (; i < v.size() && depth > 0; ++i) {
        if (v[i] == '\\') ++i;
        else if (v[i] == '(') ++depth;
        else if (v[i] == ')') --depth;
      }
      const std::size_t end = depth == 0 ? i - 1 : v.size();
      out.push_back({token::comment, v.substr(start, std::min(end, v.size()) - start)});
    } else {
      const std::size_t start = i;
      bool quoted = false;
      for (; i < v.size(); ++i) {
        if (v[i] == '"') quoted = !quoted;
        else if (quoted && v[i] == '\\') ++i;
        else if (!quoted && (v[i] == ' ' || v[i] == '\t' || v[i] == '(' || v[i] == ';')) break;
      }
      i = std::min(i, v.size());
      out.push_back({token::word, v.substr(start, i - start)});
    }
  }
  return out;
}

// Runs of white space as one space, trimmed.
std::string collapsed(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool space = c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Cut to max_hop_field octets, never inside a UTF-8 sequence (a continuation octet is never
// where a character starts, RFC 3629 §3).
std::string cut(std::string s) {
  if (s.size() <= max_hop_field) return s;
  std::size_t n = max_hop_field;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

void append(std::optional<std::string>& field, std::string_view text) {
  if (!field) field.emplace();
  if (field->size() >= max_hop_field) return;
  if (!field->empty()) *field += ' ';
  *field += text.substr(0, max_hop_field + 1);
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && core::lowercase(s.substr(0, prefix.size())) == prefix;
}

bool contains_ci(std::string_view s, std::string_view part) {
  return core::lowercase(s).find(part) != std::string::npos;
}

// The TLS a comment reports, in the shapes MTAs write it:
//   Postfix   (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange ...)
//   Microsoft (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
//   sendmail  (version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT)
//   Exim      (TLS1.3), or in older releases (TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256)
//   Gmail     (Google Transport Security)
std::optional<std::string> tls_annotation(std::string_view comment) {
  std::string c = collapsed(comment);
  const bool names_tls = contains_ci(c, "tls") || contains_ci(c, "ssl");
  if (starts_with_ci(c, "using ") && names_tls) {
    c.erase(0, 6);
    // Postfix goes on with the key exchange and signature; the version and cipher are the point.
    if (auto more = c.find(" key-exchange"); more != std::string::npos) c.resize(more);
    return c;
  }
  if (contains_ci(c, "version=") && names_tls) return c;
  if ((starts_with_ci(c, "tls") || starts_with_ci(c, "ssl")) && c.size() > 3 &&
      (std::isdigit(static_cast<unsigned char>(c[3])) || c[3] == 'v' || c[3] == 'V'))
    return c;
  if (c == "Google Transport Security") return c;
  return std::nullopt;
}

// RFC 5321 §4.4's clause keywords; via, id and for end the clause before them and are not kept.
// "tls" is Exim's own, followed by the cipher.
enum class clause { none, from, by, with, tls, other };

clause keyword(std::string_view word) {
  static constexpr std::array<std::pair<std::string_view, clause>, 7> words{
      {{"from", clause::from},
       {"by", clause::by},
       {"with", clause::with},
       {"tls", clause::tls},
       {"via", clause::other},
       {"id", clause::other},
       {"for", clause::other}}};
  if (word.size() > 4) return clause::none;
  const auto lower = core::lowercase(word);
  for (const auto& [name, c] : words)
    if (lower == name) return c;
  return clause::none;
}

// The date after the last ';' outside comments: ISO 8601 when RFC 5322 §3.3 reads it.
std::optional<std::string> date_of(const std::vector<token>& ts, std::size_t after) {
  std::string text;
  for (std::size_t i = after; i < ts.size(); ++i) {
    if (ts[i].type == token::comment) continue;
    if (!text.empty()) text += ' ';
    text += ts[i].text;
  }
  if (text.empty()) return std::nullopt;
  if (auto t = parse_date(text)) return core::format_time(*t * 1000);
  return cut(text);
}

// RFC 3848 and RFC 6531 §4.3: the registered types; an "S" after the protocol means STARTTLS.
// SMTPS is not registered; Gmail writes it for mail that came in TLS.
enum class transport { tls, clear, unknown };
transport transport_of(const std::optional<std::string>& with) {
  if (!with) return transport::unknown;
  const auto type = core::lowercase(with->substr(0, with->find(' ')));
  static constexpr std::array<std::string_view, 9> tls{"esmtps",    "esmtpsa",    "lmtps",
                                                       "lmtpsa",    "utf8smtps",  "utf8smtpsa",
                                                       "utf8lmtps", "utf8lmtpsa", "smtps"};
  static constexpr std::array<std::string_view, 9> clear{
      "smtp", "esmtp", "esmtpa", "lmtp", "lmtpa", "utf8smtp", "utf8smtpa", "utf8lmtp", "utf8lmtpa"};
  if (std::find(tls.begin(), tls.end(), type) != tls.end()) return transport::tls;
  if (std::find(clear.begin(), clear.end(), type) != clear.end()) return transport::clear;
  return transport::unknown;
}

// The address literal of a TCP-info, "[192.0.2.10]" or "[IPv6:::1]", is a loopback address.
bool from_loopback(const std::string& from) {
  const auto open = from.find('[');
  if (open == std::string::npos) return false;
  auto address = core::lowercase(from.substr(open + 1, from.find(']', open) - open - 1));
  if (address.starts_with("ipv6:")) address.erase(0, 5);
  return address.starts_with("127.") || address == "::1";
}

}  // namespace

hop parse_received(std::string_view value) {
  const std::string v = unfold(value.substr(0, max_value));
  const auto ts = tokens(v);
  std::size_t date_at = ts.size();
  for (std::size_t i = 0; i < ts.size(); ++i)
    if (ts[i].type == token::semicolon) date_at = i;

  hop h;
  std::optional<std::string> tls, cipher;
  clause current = clause::none;
  bool tcp_info = false;  // the from or by domain has its comment
  for (std::size_t i = 0; i < date_at; ++i) {
    const auto& t = ts[i];
    if (t.type == token::word) {
      if (const auto k = keyword(t.text); k != clause::none) {
        current = k;
        tcp_info = false;
        if (k == clause::from && !h.from) h.from.emplace();
        if (k == clause::by && !h.by) h.by.emplace();
        if (k == clause::with && !h.with) h.with.emplace();
        continue;
      }
      if (current == clause::from) append(h.from, t.text);
      if (current == clause::by) append(h.by, t.text);
      if (current == clause::with) append(h.with, t.text);
      if (current == clause::tls && !cipher) cipher = std::string(t.text.substr(0, max_hop_field));
    } else if (t.type == token::comment) {
      if (auto reported = tls_annotation(t.text)) {
        if (!tls) tls = std::move(reported);
      } else if ((current == clause::from || current == clause::by) && !tcp_info) {
        // RFC 5321 §4.4 Extended-Domain: the domain and its TCP-info, "(name [address])".
        append(current == clause::from ? h.from : h.by, "(" + collapsed(t.text) + ")");
        tcp_info = true;
      }
    }
  }
  if (tls && cipher) *tls += " " + *cipher;  // Exim: (TLS1.3) tls TLS_AES_256_GCM_SHA384
  if (!tls && transport_of(h.with) == transport::tls) tls = h.with;
  for (auto* field : {&h.from, &h.by, &h.with, &tls})
    if (*field) *field = cut(std::move(**field));
  h.tls = std::move(tls);
  if (date_at < ts.size()) h.at = date_of(ts, date_at + 1);
  return h;
}

received_chain read_received(const std::vector<header_field>& fields) {
  received_chain chain;
  // RFC 5321 §4.4: each relay prepends its field, so the newest is first in the header.
  for (const auto& f : fields) {
    if (core::lowercase(f.name) != "received") continue;
    if (++chain.fields <= static_cast<int>(max_hops))
      chain.hops.push_back(parse_received(f.raw_value));
  }
  std::reverse(chain.hops.begin(), chain.hops.end());
  return chain;
}

bool in_clear_text(const hop& h) {
  return !h.tls && h.from && !h.from->empty() && !from_loopback(*h.from) &&
         transport_of(h.with) == transport::clear;
}

void tag_invoke(json::value_from_tag, json::value& v, const hop& h) {
  v = json::object{{"from", core::optional_json(h.from)},
                   {"by", core::optional_json(h.by)},
                   {"with", core::optional_json(h.with)},
                   {"tls", core::optional_json(h.tls)},
                   {"at", core::optional_json(h.at)}};
}

hop tag_invoke(json::value_to_tag<hop>, const json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  return {optional_field<std::string>(o, "from"), optional_field<std::string>(o, "by"),
          optional_field<std::string>(o, "with"), optional_field<std::string>(o, "tls"),
          optional_field<std::string>(o, "at")};
}

}  // namespace mxlens::analyzers::message
