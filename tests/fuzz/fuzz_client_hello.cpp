// The ClientHello reader (receiver/tls_inspect.hpp read_client_hello): OpenSSL's parser on the
// record, then this module's own reading of the extensions (supported_versions, groups,
// signature algorithms, ALPN, SNI) and the JA4 fingerprint made of them.
//
// Oracles: no crash and no sanitizer report; every list is bounded by the octets it came from;
// the fingerprint has JA4's shape (FoxIO's JA4 specification: "t13d1516h2_8daaf6152771_…") and its
// part a says what the offer says (SNI, the cipher count).
//
// Input: the octets a client sent where a ClientHello record was expected.
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "receiver/tls_inspect.hpp"
#include "tests/fuzz/oracle.hpp"

using mxlens::fuzz::require;

namespace {

bool lower_hex(std::string_view s) { return s.find_first_not_of("0123456789abcdef") == s.npos; }

bool alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

SSL_CTX* context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_server_method());
    mxlens::receiver::install_client_hello_capture(c);
    return c;
  }();
  return ctx;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view record(reinterpret_cast<const char*>(data), size);
  const auto hello = mxlens::receiver::read_client_hello(context(), record);
  if (!hello) return 0;
  // Two octets a suite, group or version; ALPN and SNI are copied from the record.
  require(hello->ciphers.size() * 2 <= size, "more suites than the record holds");
  require(hello->groups.size() * 2 <= size, "more groups than the record holds");
  require(hello->versions.size() * 2 <= size + 2, "more versions than the record holds");
  require(!hello->versions.empty(), "no version");
  std::size_t alpn = 0;
  for (const auto& a : hello->alpn) alpn += a.size() + 1;
  require(alpn <= size, "more ALPN than the record holds");
  require(!hello->sni || hello->sni->size() <= size, "a longer SNI than the record holds");

  const auto& f = hello->fingerprint;
  require(f.size() == 36 && f[10] == '_' && f[23] == '_', "a fingerprint not shaped as JA4");
  require(f[0] == 't', "JA4 part a: not TCP");
  const auto version = f.substr(1, 2);
  require(version == "13" || version == "12" || version == "11" || version == "10" ||
              version == "s3" || version == "s2" || version == "00",
          "JA4 part a: version");
  require(f[3] == (hello->sni ? 'd' : 'i'), "JA4 part a: SNI");
  char count[4];
  std::snprintf(count, sizeof count, "%02zu", std::min<std::size_t>(hello->ciphers.size(), 99));
  require(f.substr(4, 2) == count, "JA4 part a: the suite count");
  require(f.substr(6, 2).find_first_not_of("0123456789") == std::string::npos,
          "JA4 part a: the extension count");
  require(alnum(f[8]) && alnum(f[9]), "JA4 part a: ALPN");
  require(lower_hex(f.substr(11, 12)) && lower_hex(f.substr(24, 12)), "JA4 parts b and c");
  return 0;
}
