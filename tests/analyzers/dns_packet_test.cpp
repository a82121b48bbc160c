// The answer packets the resolver reads: compressed names, every record type the analyzers ask
// for, and messages cut short or built to loop.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "analyzers/dns/resolver.hpp"

using namespace mxlens::analyzers::dns;
using bytes = std::vector<unsigned char>;

namespace {

void add(bytes& m, std::initializer_list<int> b) {
  for (int x : b) m.push_back(static_cast<unsigned char>(x));
}

void add_name(bytes& m, const std::string& dotted) {
  std::size_t start = 0;
  while (start < dotted.size()) {
    auto dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    m.push_back(static_cast<unsigned char>(dot - start));
    m.insert(m.end(), dotted.begin() + static_cast<long>(start),
             dotted.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  m.push_back(0);
}

// A header with one question (`qname`, type `qtype`, class IN) and `answers` answer records.
bytes message(const std::string& qname, int qtype, int answers) {
  bytes m;
  add(m, {0x12, 0x34, 0x81, 0x80, 0, 1, 0, answers, 0, 0, 0, 0});
  add_name(m, qname);
  add(m, {0, qtype, 0, 1});
  return m;
}

// A record owned by the question's name (a pointer to offset 12), with its rdata.
void add_record(bytes& m, int type, const bytes& rdata) {
  const int size = static_cast<int>(rdata.size());
  add(m, {0xc0, 0x0c, 0, type, 0, 1, 0, 0, 0x0e, 0x10, size >> 8, size & 0xff});
  m.insert(m.end(), rdata.begin(), rdata.end());
}

}  // namespace

TEST_CASE("records of the asked type, with compressed names", "[dns]") {
  bytes m = message("Example.TEST", 15, 3);
  bytes mx{0, 10, 4, 'm', 'a', 'i', 'l', 0xc0, 0x0c};  // mail.<question name>
  add_record(m, 15, mx);
  add_record(m, 16, {5, 'o', 't', 'h', 'e', 'r'});  // another type: not an MX
  bytes mx2{0, 20};
  add_name(mx2, "backup.example.net");
  add_record(m, 15, mx2);
  std::vector<std::string> out;
  REQUIRE(answer_records(m, rr_type::mx, out));
  CHECK(out == std::vector<std::string>{"10 mail.example.test", "20 backup.example.net"});
}

TEST_CASE("A, AAAA, PTR and TXT in presentation form", "[dns]") {
  std::vector<std::string> out;
  bytes a = message("a.test", 1, 1);
  add_record(a, 1, {192, 0, 2, 7});
  REQUIRE(answer_records(a, rr_type::a, out));
  CHECK(out == std::vector<std::string>{"192.0.2.7"});

  out.clear();
  bytes aaaa = message("a.test", 28, 1);
  add_record(aaaa, 28, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  REQUIRE(answer_records(aaaa, rr_type::aaaa, out));
  CHECK(out == std::vector<std::string>{"2001:db8::1"});

  out.clear();
  bytes ptr = message("2.0.0.127.in-addr.arpa", 12, 1);
  add_record(ptr, 12, {4, 'h', 'o', 's', 't', 0xc0, 0x0e});  // host.0.0.127.in-addr.arpa
  REQUIRE(answer_records(ptr, rr_type::ptr, out));
  CHECK(out == std::vector<std::string>{"host.0.0.127.in-addr.arpa"});

  out.clear();  // several character-strings make one value (RFC 7208 §3.3)
  bytes txt = message("s.test", 16, 1);
  add_record(txt, 16, {6, 'v', '=', 's', 'p', 'f', '1', 4, ' ', '-', 'a', 'l', 0, 2, 'l', '.'});
  REQUIRE(answer_records(txt, rr_type::txt, out));
  CHECK(out == std::vector<std::string>{"v=spf1 -all."});
}

TEST_CASE("no record of the type: true and nothing", "[dns]") {
  std::vector<std::string> out;
  CHECK(answer_records(message("empty.test", 16, 0), rr_type::txt, out));
  CHECK(out.empty());
}

TEST_CASE("malformed messages are refused, never read past their end", "[dns]") {
  std::vector<std::string> out;
  CHECK_FALSE(answer_records(bytes{0x12, 0x34, 0x81}, rr_type::a, out));  // shorter than a header

  bytes cut = message("a.test", 1, 1);
  add_record(cut, 1, {192, 0, 2, 7});
  cut.pop_back();  // rdata shorter than its length
  CHECK_FALSE(answer_records(cut, rr_type::a, out));

  bytes missing = message("a.test", 1, 2);  // two answers announced, one present
  add_record(missing, 1, {192, 0, 2, 7});
  CHECK_FALSE(answer_records(missing, rr_type::a, out));

  bytes loop = message("a.test", 12, 1);
  const int here = static_cast<int>(loop.size()) + 12;  // where the rdata starts
  add_record(loop, 12,
             {static_cast<unsigned char>(0xc0 | (here >> 8)),
              static_cast<unsigned char>(here & 0xff)});  // a pointer to itself
  CHECK_FALSE(answer_records(loop, rr_type::ptr, out));

  bytes label = message("a.test", 12, 1);
  add_record(label, 12, {0x41, 'x', 0});  // label type 01 (RFC 6891 made it unused)
  CHECK_FALSE(answer_records(label, rr_type::ptr, out));

  bytes longname = message("a.test", 12, 1);
  bytes name;
  for (int i = 0; i < 5; ++i) {  // 5 × 64 bytes: over the 255 a name may have
    name.push_back(63);
    name.insert(name.end(), 63, 'a');
  }
  name.push_back(0);
  add_record(longname, 12, name);
  CHECK_FALSE(answer_records(longname, rr_type::ptr, out));

  // 255 bytes with the root's zero is the most a name may have; one more is refused.
  auto name_of = [](int last_label) {
    bytes n;
    for (int i = 0; i < 3; ++i) {
      n.push_back(63);
      n.insert(n.end(), 63, 'a');
    }
    n.push_back(static_cast<unsigned char>(last_label));
    n.insert(n.end(), static_cast<std::size_t>(last_label), 'b');
    n.push_back(0);
    return n;
  };
  bytes longest = message("a.test", 12, 1);
  add_record(longest, 12, name_of(62));  // 3 × 64 + 63 + 1 = 256: one too many
  CHECK_FALSE(answer_records(longest, rr_type::ptr, out));
  bytes fits = message("a.test", 12, 1);
  add_record(fits, 12, name_of(61));  // 255
  CHECK(answer_records(fits, rr_type::ptr, out));
  CHECK(out.back().size() == 253);
  out.clear();

  bytes overrun = message("a.test", 15, 1);
  add_record(overrun, 15, {0, 10, 4, 'm', 'a'});  // the MX name runs past its rdata
  overrun.insert(overrun.end(), {'i', 'l', 0});
  CHECK_FALSE(answer_records(overrun, rr_type::mx, out));

  bytes bad_a = message("a.test", 1, 1);
  add_record(bad_a, 1, {192, 0, 2});  // an A record of 3 bytes
  CHECK_FALSE(answer_records(bad_a, rr_type::a, out));
}
