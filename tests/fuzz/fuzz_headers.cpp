// The message's header block and MIME structure (analyzers/message/message.hpp): the header
// fields as the wire carried them, unfolding, the From addresses (GMime), the Received chain and
// the content facts (GMime, bounded).
//
// Oracles: no crash and no sanitizer report; the bounds message.hpp and received.hpp promise
// (parts, links, decoded text, placeholders, hops and their fields); fields name no ':' and unfold
// to one line without blanks at either end; From's domains lowercase and each once; inspect()
// sees the same fields as header_fields().
//
// Input: the first octet's low bit says whether the message came with SMTPUTF8; the message.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "analyzers/message/message.hpp"
#include "tests/fuzz/oracle.hpp"

using namespace mxlens::analyzers::message;

using mxlens::fuzz::require;

namespace {}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool smtputf8 = data[0] & 1;
  const std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);

  const auto fields = header_fields(raw);
  std::size_t octets = 0;
  for (const auto& f : fields) {
    require(f.name.find(':') == std::string::npos, "a field name with ':'");
    octets += f.name.size() + f.raw_value.size();
    const auto value = unfold(f.raw_value);
    require(value.find_first_of("\r\n") == std::string::npos, "an unfolded value with CR or LF");
    require(value.empty() || (value.front() != ' ' && value.front() != '\t' &&
                              value.back() != ' ' && value.back() != '\t'),
            "an unfolded value with blanks at an end");
    require(count(fields, f.name) >= 1, "count() misses a field");
  }
  require(octets <= 2 * raw.size(), "fields hold more than the message");

  const auto addresses = from(fields);
  require(addresses.fields == count(fields, "From"), "From fields miscounted");
  std::set<std::string> seen;
  for (const auto& d : addresses.domains) {
    for (char c : d) require(c < 'A' || c > 'Z', "a From domain not lowercase");
    require(seen.insert(d).second, "a From domain twice");
  }

  const auto facts = inspect(raw, smtputf8);
  require(facts.fields.size() == fields.size(), "inspect() sees other fields");
  require(facts.parts.size() <= static_cast<std::size_t>(max_parts), "more parts than max_parts");
  require(facts.links.size() <= max_links, "more links than max_links");
  require(facts.body_size <= raw.size(), "a body larger than the message");
  require(facts.placeholders.size() <= max_placeholders, "more placeholders than the bound");
  require(facts.received.hops.size() <= max_hops, "more hops than max_hops");
  require(facts.received.fields == count(fields, "Received"), "Received fields miscounted");
  for (const auto& h : facts.received.hops)
    for (const auto* f : {&h.from, &h.by, &h.with, &h.tls, &h.at})
      require(!*f || (*f)->size() <= max_hop_field, "a hop's field beyond max_hop_field");
  for (const auto& p : facts.parts) {
    require(p.depth <= max_depth, "a part deeper than max_depth");
    require(p.decoded_size <= raw.size() * 4 + max_decoded_text, "a part decoded beyond bounds");
  }
  return 0;
}
