// The DNS double of the fuzz targets that run analyzers: a DNS server on loopback, in a thread of
// the fuzzing process, that answers the resolver (analyzers/dns, on libunbound, with this server
// as its one upstream) from a zone the fuzzer writes. The zone is written in the dnsmasq syntax
// of tests/dns/zones.conf and tests/cases/*/zone.conf, so their zones are seeds as they are.
//
// Like dnsmasq with `local=`, it is authoritative for everything: a name with no record is
// NXDOMAIN, a name asked for a type it does not have is NODATA (RFC 2308). Answers carry TTL 0,
// and each run takes a resolver of its own, so nothing one input taught the resolver is seen by
// the next. Not a DNS implementation: no CNAME, no wildcard, no TCP, no EDNS.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace mxlens::fuzz {

struct zone {
  // (lowercase name without the final dot, type) -> each record's rdata in wire form
  std::map<std::pair<std::string, std::uint16_t>, std::vector<std::string>> records;
  std::set<std::string> names;  // every name that has a record

  // A TXT record whose text is taken as it is (split into 255-octet character-strings).
  void add_txt(const std::string& name, std::string_view text);
};

// Reads the lines dnsmasq would: host-record=NAME[,NAME…],ADDR[,ADDR], ptr-record=NAME,TARGET,
// txt-record=NAME,"STRING"[,"STRING"…] (one record of those character-strings) and
// mx-host=NAME,HOST[,PREFERENCE]. Other lines are ignored; a malformed line adds what it can.
zone parse_zone(std::string_view text);

class dns_double {
 public:
  dns_double();  // binds 127.0.0.1 on a free port; the server runs until destruction
  ~dns_double();
  dns_double(const dns_double&) = delete;
  dns_double& operator=(const dns_double&) = delete;

  // The resolver's upstream setting: "127.0.0.1@PORT".
  std::string upstream() const;
  // The zone of the next answers.
  void serve(zone z);
  // Questions answered since the last serve().
  std::size_t questions() const { return questions_; }

 private:
  void run();
  std::string answer(std::string_view query);

  int socket_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> questions_{0};
  std::mutex mutex_;
  zone zone_;
  std::thread thread_;
};

}  // namespace mxlens::fuzz
