// The message's header block as the wire carried it, and its From addresses. DKIM reads the raw
// bytes; the other analyzers read fields from here. GMime parses the addresses; the header block
// is split here because GMime's header list leaves out the Content-* fields and decodes values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/message/received.hpp"

namespace mxlens::analyzers::message {

struct header_field {
  std::string name;       // as written
  std::string raw_value;  // after the colon, folding kept
};

// The fields of the header block (up to the first empty line), in order.
std::vector<header_field> header_fields(std::string_view raw);

// RFC 5322 unfolding: CRLF followed by white space becomes that white space; trimmed.
std::string unfold(std::string_view value);

struct from_addresses {
  int fields = 0;                      // how many From fields the message has
  std::vector<std::string> addresses;  // mailboxes of the (single) From field
  std::vector<std::string> domains;    // their domains in A-labels (dns::idn), lowercase, each
                                       // once, in order; an invalid IDN lowercased as it is
};
from_addresses from(const std::vector<header_field>& fields);

// The mailboxes of an address-list value (groups expanded), parsed by GMime.
std::vector<std::string> parse_addresses(const std::string& value);

// RFC 5322 §3.3 date-time (obsolete zone names accepted, as §4.3 requires of readers); the
// instant in Unix seconds, or nullopt when the syntax is wrong.
std::optional<std::int64_t> parse_date(std::string v);

}  // namespace mxlens::analyzers::message

namespace mxlens::analyzers::message {

// Bounds on what a message may cost to inspect; beyond them the rest is not inspected and the
// facts say so.
inline constexpr int max_parts = 500;
inline constexpr int max_depth = 32;
inline constexpr std::size_t max_decoded_text = 4u << 20;  // per text part
inline constexpr std::size_t max_links = 200;
inline constexpr std::size_t max_placeholders = 20;

// The unreplaced template placeholders in a text ({{name}}, %%name%%, *|MERGE|*, [FirstName],
// ${name}; placeholders.cpp says what counts), each once, at most `limit`.
std::vector<std::string> find_placeholders(std::string_view text, std::size_t limit);

struct placeholder {
  std::string text;   // "{{first_name}}"
  std::string where;  // "Subject", "text/plain", "text/html" (its visible text)
};

struct part_facts {
  std::string content_type;  // "text/html"
  std::string charset;       // as declared, "" when absent
  std::string encoding;      // Content-Transfer-Encoding as written, "" when absent
  std::size_t decoded_size = 0;
  int depth = 0;
  bool attachment = false;
};

// What the header, unsubscribe and content checks read, gathered with GMime and from the raw
// header block. Every list is bounded.
struct content_facts {
  std::vector<header_field> fields;
  from_addresses from;
  std::vector<std::string> header_problems;  // syntax: names, long lines, 8-bit, encoded words
  std::vector<std::string> mime_problems;    // MIME-Version, boundaries, encodings, structure
  std::vector<std::string> charset_problems;
  std::vector<std::string> parser_warnings;  // GMime's own findings
  std::vector<part_facts> parts;
  int parts_seen = 0;    // including those past the limit
  bool limited = false;  // a bound above was reached
  bool mime_used = false;
  bool has_text_plain = false;
  bool has_html = false;
  std::size_t html_size = 0;       // decoded octets of the largest HTML part
  std::size_t text_chars = 0;      // visible text in text/plain and HTML parts
  int images = 0;                  // <img> tags and image/* parts
  std::vector<std::string> links;  // http(s) URLs in the text and HTML
  std::size_t body_size = 0;       // octets after the header block
  received_chain received;         // the Received fields, oldest hop first (received.hpp)
  std::vector<placeholder>
      placeholders;  // in the Subject and the text parts, at most max_placeholders
};

// `smtputf8`: raw UTF-8 in header values is allowed (RFC 6532).
content_facts inspect(std::string_view raw, bool smtputf8);

// How many fields have this name (case-insensitive).
int count(const std::vector<header_field>& fields, std::string_view name);
// The first field of that name, unfolded; nullopt when absent.
std::optional<std::string> first(const std::vector<header_field>& fields, std::string_view name);

}  // namespace mxlens::analyzers::message
