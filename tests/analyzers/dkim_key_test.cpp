// Key records: type and size computed for RSA and ed25519 (libopendkim reads 0 bits for ed25519).
#include <catch2/catch.hpp>

#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dns/resolver.hpp"

using namespace mxlens::analyzers;

TEST_CASE("RSA and ed25519 key sizes, revoked and malformed keys", "[dkim]") {
  // RFC 8463 §A.3's example key.
  auto ed = dkim::inspect_key("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  CHECK(ed.type == "ed25519");
  CHECK(ed.bits == 256);
  CHECK(ed.problem.empty());

  // RFC 6376 §A.3's example 1024-bit RSA key (SubjectPublicKeyInfo).
  auto rsa = dkim::inspect_key(
      "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYt"
      "IxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhi"
      "tdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB");
  CHECK(rsa.type == "rsa");
  CHECK(rsa.bits == 1024);

  auto revoked = dkim::inspect_key("v=DKIM1; k=rsa; p=");
  CHECK(revoked.problem == "key revoked (empty p=)");
  CHECK_FALSE(revoked.bits);

  CHECK_FALSE(dkim::inspect_key("v=DKIM1; p=bm90IGEga2V5").problem.empty());
  CHECK_FALSE(dkim::inspect_key("v=DKIM1; k=ed25519; p=AAAA").problem.empty());
  CHECK_FALSE(dkim::inspect_key("v=DKIM1; k=dsa; p=AAAA").problem.empty());
}

TEST_CASE("reverse names for IPv4 and IPv6 (RFC 1035 §3.5, RFC 3596 §2.5)", "[dns]") {
  CHECK(dns::reverse_name("192.0.2.1") == "1.2.0.192.in-addr.arpa");
  CHECK(dns::reverse_name("2001:db8::1") ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  CHECK(dns::reverse_name("not an address").empty());
  CHECK(dns::same_address("::1", "0:0:0:0:0:0:0:1"));
  CHECK_FALSE(dns::same_address("127.0.0.1", "127.0.0.2"));
  CHECK(dns::normalize_name("Mail.Example.COM.") == "mail.example.com");
}

TEST_CASE("the key record a signature points at, for asking ahead of the verification", "[dkim]") {
  CHECK(dkim::key_name("v=1; a=rsa-sha256; d=example.com; s=sel1; b=abc") ==
        std::optional<std::string>("sel1._domainkey.example.com"));
  CHECK(dkim::key_name(" v=1;\r\n\ts=2026\r\n\t; d = mail.example.org ; bh=x") ==
        std::optional<std::string>("2026._domainkey.mail.example.org"));
  CHECK_FALSE(dkim::key_name("v=1; d=example.com; b=abc"));
  CHECK_FALSE(dkim::key_name("v=1; s=; d=example.com"));
}

TEST_CASE("a key's size is the same read once or many times", "[dkim]") {
  const std::string record =
      "v=DKIM1; k=rsa; "
      "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/"
      "zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/"
      "NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB";
  auto first = dkim::inspect_key(record);
  auto again = dkim::inspect_key(record);
  CHECK(first.bits == std::optional<int>(1024));
  CHECK(again.bits == first.bits);
  CHECK(again.type == first.type);
}

TEST_CASE("a key record with a byte that is not ASCII does not parse (RFC 6376 §3.2, §6.1.2)",
          "[dkim]") {
  const std::string key =
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/"
      "zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/"
      "NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB";
  REQUIRE(dkim::inspect_key("v=DKIM1; n=rotated 2026 - ask; p=" + key).problem.empty());

  auto dash = dkim::inspect_key("v=DKIM1; n=rotated 2026 \x96 ask; p=" + key);
  CHECK(dash.problem == "key syntax error: a byte that is not ASCII in n=rotated 2026 \\x96 ask");
  CHECK_FALSE(dash.bits);

  auto bom = dkim::inspect_key("\xEF\xBB\xBFv=DKIM1; p=" + key);
  CHECK(bom.problem == "key syntax error: a byte that is not ASCII in \\xEF\\xBB\\xBFv=DKIM1");

  // In a long p=, the characters around the byte, after the tag's name.
  auto inside = dkim::inspect_key("v=DKIM1; p=" + key.substr(0, 100) + "\x80" + key.substr(100));
  CHECK(inside.problem == "key syntax error: a byte that is not ASCII in p=..." +
                              key.substr(84, 16) + "\\x80" + key.substr(100, 16) + "...");
}
