// Bytes from the wire and from DNS are data: stored exactly as they came, and shown as text that
// is always valid UTF-8. Storage and the worker's frames keep a string's bytes as they are, UTF-8
// or not (Boost.JSON writes them unchanged and, with allow_invalid_utf8, reads them back); every
// JSON text a person or a script reads (the API, the event streams, the command line) is written
// by printable_json, which shows each byte that is not part of well-formed UTF-8 (RFC 3629 §4) as
// the four characters \xHH, and writes numbers in their shortest form ("9", "0.025"), not
// Boost.JSON's "9E0".
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace mxlens::core {

// The bytes, with every byte that is not part of well-formed UTF-8 shown as \xHH.
std::string printable(std::string_view bytes);
// What printable() shows, made safe for a terminal: C0 control characters (line ends and tabs
// included) and DEL as \xHH, the C1 controls U+0080-U+009F (a terminal may read U+009B as CSI)
// and the bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) as \uHHHH. An
// escape sequence in a sender's text is shown, never run, and one value is one line. For text
// printed to a terminal; JSON output keeps printable() and JSON's own escapes.
std::string terminal_safe(std::string_view bytes);
// Whether the bytes are well-formed UTF-8.
bool is_utf8(std::string_view bytes);

// The bytes with every byte that is not printable ASCII (0x20-0x7E) shown as \xHH, UTF-8 or not:
// for naming bytes in a record whose grammar is ASCII, where a byte order mark is as wrong as
// \x96 and, being well-formed UTF-8, would otherwise be shown as an invisible character.
std::string ascii_escaped(std::string_view bytes);
// The first item of `text` (between `separator`s, spaces and tabs around it trimmed) that holds a
// byte that is not ASCII, as ascii_escaped shows it; a long item is cut to the characters around
// that byte, keeping its name up to '=' ("p=...QEAmTPypfPx\x80Tf+WOGoAHi+Tc0..."). Empty when
// every byte of `text` is ASCII. For SPF terms (' ') and DKIM and DMARC tags (';').
std::string non_ascii_item(std::string_view text, char separator);

// The JSON text of v for people and scripts (see above); strings and keys go through printable,
// and control characters, DEL and C1 included, are written as \u escapes, which mean the same
// characters to a JSON reader and nothing to a terminal.
std::string printable_json(const boost::json::value& v);

// Parses JSON this server wrote (stored facts, reports, sessions, the worker's frames), whose
// strings may hold bytes that are not UTF-8; throws boost::system::system_error on a syntax error.
boost::json::value parse_stored(std::string_view text);

}  // namespace mxlens::core
