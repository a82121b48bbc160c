// SPF records (analyzers/spf): our parser, macro expander and check_host() read the record and
// every record an include or a redirect reaches, and libspf2 runs beside them as the second
// opinion, on the same answers. So the record is fuzzed the way mxlens meets it: served by DNS
// (tests/fuzz/dns_double.hpp) and evaluated for MAIL FROM and for HELO, with the other records an
// include or a redirect would reach.
//
// Oracles: no crash, no abort and no sanitizer report; a result of the RFC's (never `policy`);
// more than 10 DNS-querying terms or 2 void lookups is a permerror (§4.6.4); a record with an
// octet that is not ASCII is a permerror (§4.6); every term of the record is reported, none
// costs more lookups than the whole, and the deciding term is one of them; the result's JSON form
// reads back the same.
//
// Input: the first line is the TXT record of sender.example, taken as it is; the other lines are
// zone lines in dnsmasq's syntax (tests/dns/zones.conf). The client is 127.0.0.2, its HELO
// mail.sender.example, MAIL FROM bounce@sender.example.
#include <algorithm>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "analyzers/dns/resolver.hpp"
#include "analyzers/spf/spf.hpp"
#include "tests/fuzz/dns_double.hpp"
#include "tests/fuzz/oracle.hpp"

using namespace mxlens::analyzers;

using mxlens::fuzz::require;

namespace {

void require_result(const spf::result& r) {
  require(r.value != mxlens::core::auth_result::policy, "an SPF result of policy");
  if (r.lookups > spf::max_dns_terms || r.void_lookups > spf::max_void_lookups)
    require(r.value == mxlens::core::auth_result::permerror,
            "past RFC 7208 4.6.4's limits but no permerror");
  require(r.lookups <= spf::max_dns_terms + 1, "lookups counted past the 11th term");
  for (const auto& t : r.terms)
    require(t.lookups <= r.lookups && t.void_lookups <= r.void_lookups,
            "a term costs more lookups than the evaluation");
  if (r.decided_by)
    require(std::any_of(r.terms.begin(), r.terms.end(),
                        [&](const spf::term_result& t) { return t.term == *r.decided_by; }),
            "the deciding term is not a term of the record");
  require(boost::json::value_to<spf::result>(boost::json::value_from(r)) == r,
          "the JSON form of the result reads otherwise");
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static mxlens::fuzz::dns_double server;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto eol = in.find('\n');
  const auto record = in.substr(0, eol);
  auto z = mxlens::fuzz::parse_zone(eol == std::string_view::npos ? "" : in.substr(eol + 1));
  z.add_txt("sender.example", record);
  server.serve(std::move(z));

  dns::settings s;
  s.upstream = server.upstream();
  s.timeout = std::chrono::milliseconds(2000);
  dns::resolver resolver(s);  // one per input: nothing is remembered from the last
  dns::lookups lookups(resolver);
  const spf::request req{"127.0.0.2", "mail.sender.example", "bounce@sender.example", "mx.test"};
  const auto mailfrom = spf::check(lookups, req, spf::identity::mailfrom);
  require_result(mailfrom);
  require(mailfrom.domain == std::optional<std::string>("sender.example"), "the MAIL FROM domain");
  const bool ascii = std::all_of(record.begin(), record.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (mailfrom.records == 1 && mailfrom.record == std::string(record) && !ascii)
    require(mailfrom.value == mxlens::core::auth_result::permerror,
            "a record with an octet that is not ASCII is no permerror");
  require_result(spf::check(lookups, req, spf::identity::helo));
  return 0;
}
