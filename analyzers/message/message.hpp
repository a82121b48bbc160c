// The message's header block as the wire carried it, and its From addresses. DKIM reads the raw
// bytes; the other analyzers read fields from here. GMime parses the addresses; the header block
// is split here because GMime's header list leaves out the Content-* fields and decodes values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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
  std::vector<std::string> domains;    // their domains, lowercase, each once, in order
};
from_addresses from(const std::vector<header_field>& fields);

}  // namespace mxlens::analyzers::message
