// The DNS answer reader (analyzers/dns/resolver.hpp answer_records): a DNS message as libunbound
// hands it out, read for each record type the analyzers ask for.
//
// Oracles: no crash, no sanitizer report and no endless loop (compression pointers); a message
// read without error gives at most ANCOUNT records, each in the presentation form the analyzers
// rely on: A and AAAA as addresses inet_pton reads, MX as "PREFERENCE NAME", PTR names lowercase
// without the final dot, at most 255 octets (RFC 1035 §3.1).
//
// Input: the message.
#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

#include "analyzers/dns/resolver.hpp"
#include "tests/fuzz/oracle.hpp"

using namespace mxlens::analyzers::dns;

using mxlens::fuzz::require;

namespace {

void require_name(const std::string& name) {
  require(name.size() <= 255, "a name over 255 octets");
  require(name.empty() || name.back() != '.', "a name with its final dot");
  for (char c : name) require(c < 'A' || c > 'Z', "a name not lowercase");
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<unsigned char> msg(data, data + size);
  const unsigned ancount = size >= 8 ? (data[6] << 8 | data[7]) : 0;
  for (auto type : {rr_type::a, rr_type::aaaa, rr_type::txt, rr_type::mx, rr_type::ptr}) {
    std::vector<std::string> out;
    if (!answer_records(msg, type, out)) continue;
    require(out.size() <= ancount, "more records than ANCOUNT");
    for (const auto& r : out) {
      unsigned char buf[16];
      switch (type) {
        case rr_type::a: require(inet_pton(AF_INET, r.c_str(), buf) == 1, "an A record"); break;
        case rr_type::aaaa:
          require(inet_pton(AF_INET6, r.c_str(), buf) == 1, "an AAAA record");
          break;
        case rr_type::mx: {
          const auto sp = r.find(' ');
          require(sp != std::string::npos && sp > 0 && sp <= 5 &&
                      r.find_first_not_of("0123456789") == sp &&
                      std::stoul(r.substr(0, sp)) <= 65535,
                  "an MX preference");
          require_name(r.substr(sp + 1));
          break;
        }
        case rr_type::ptr: require_name(r); break;
        case rr_type::txt: require(r.size() <= size, "a TXT record longer than the message"); break;
      }
    }
  }
  return 0;
}
