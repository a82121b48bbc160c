#include "receiver/tls_inspect.hpp"

#include <algorithm>
#include <catch2/catch.hpp>

using namespace mxlens::receiver;

namespace {
raw_client_hello sample() {
  raw_client_hello h;
  h.legacy_version = 0x0303;
  h.versions = {0x0304, 0x0303};
  h.ciphers = {0x1301, 0x1302, 0xc02f};
  h.extensions = {0x0000, 0x000a, 0x000d, 0x0010, 0x002b};
  h.signature_algorithms = {0x0403, 0x0804};
  h.alpn = {"h2"};
  h.sni = "mx.example";
  return h;
}
}  // namespace

TEST_CASE("JA4 part a reads version, SNI, counts and ALPN", "[receiver]") {
  auto f = ja4(sample());
  CHECK(f.substr(0, 10) == "t13d0305h2");
  auto h = sample();
  h.versions.clear();
  h.sni.reset();
  h.alpn.clear();
  CHECK(ja4(h).substr(0, 10) == "t12i030500");
}

TEST_CASE("JA4 hashes do not depend on the order of suites and extensions", "[receiver]") {
  auto a = sample(), b = sample();
  std::reverse(b.ciphers.begin(), b.ciphers.end());
  std::reverse(b.extensions.begin(), b.extensions.end());
  CHECK(ja4(a) == ja4(b));
  b.signature_algorithms = {0x0804, 0x0403};  // signature algorithms keep their order
  CHECK(ja4(a) != ja4(b));
}

TEST_CASE("JA4 of an empty offer uses the zero hashes", "[receiver]") {
  raw_client_hello h;
  h.legacy_version = 0x0301;
  CHECK(ja4(h) == "t10i000000_000000000000_000000000000");
}

TEST_CASE("versions and groups are named", "[receiver]") {
  CHECK(version_name(0x0304) == "TLSv1.3");
  CHECK(version_name(0x0301) == "TLSv1");
  CHECK(group_name(0x001d) == "x25519");
  CHECK(group_name(0x11ec) == "X25519MLKEM768");
  CHECK(group_name(0x1234) == "0x1234");
}
