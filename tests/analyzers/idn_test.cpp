// A-labels and U-labels of internationalized domain names (RFC 5890, 5891; UTS #46
// nontransitional processing), with expectations from the RFCs' examples and IANA's test TLDs.
#include "analyzers/dns/idn.hpp"

#include <catch2/catch.hpp>

using namespace mxlens::analyzers;

TEST_CASE("U-labels become A-labels, in Cyrillic, Greek and CJK (RFC 5891 §4)", "[idn]") {
  auto ru = dns::idn("пример.рф");
  CHECK(ru.valid());
  CHECK(ru.ascii == "xn--e1afmkfd.xn--p1ai");
  CHECK(ru.unicode == "пример.рф");
  CHECK(dns::idn("παράδειγμα.δοκιμή").ascii == "xn--hxajbheg2az3al.xn--jxalpdlp");
  CHECK(dns::idn("例え.テスト").ascii == "xn--r8jz45g.xn--zckzah");
  // UTS #46 maps case and width (RFC 5895): capitals, and the ideographic full stop.
  CHECK(dns::idn("ПРИМЕР.РФ").ascii == "xn--e1afmkfd.xn--p1ai");
  CHECK(dns::idn("例え。テスト").ascii == "xn--r8jz45g.xn--zckzah");
}

TEST_CASE("A-labels are checked and give their U-labels (RFC 5891 §5.4)", "[idn]") {
  auto ru = dns::idn("XN--E1AFMKFD.xn--P1AI.");
  CHECK(ru.valid());
  CHECK(ru.ascii == "xn--e1afmkfd.xn--p1ai");
  CHECK(ru.unicode == "пример.рф");
  CHECK(dns::idn("xn--hxajbheg2az3al.xn--jxalpdlp").unicode == "παράδειγμα.δοκιμή");
  CHECK(dns::idn("mail.xn--r8jz45g.xn--zckzah").unicode == "mail.例え.テスト");
}

TEST_CASE("a name without IDN labels is only lowercased", "[idn]") {
  auto plain = dns::idn("Mail.Example.COM.");
  CHECK(plain.valid());
  CHECK(plain.ascii == "mail.example.com");
  CHECK(plain.unicode == "mail.example.com");
  CHECK(plain.shown() == "mail.example.com");
  // DNS names that are no host names stay as they are: IDNA is not applied to them.
  CHECK(dns::idn("_dmarc.example.com").ascii == "_dmarc.example.com");
  CHECK(dns::idn("").ascii.empty());
  CHECK(dns::idn("[192.0.2.1]").ascii == "[192.0.2.1]");
}

TEST_CASE("both forms are shown, U-labels first", "[idn]") {
  CHECK(dns::idn("xn--e1afmkfd.xn--p1ai").shown() == "пример.рф (xn--e1afmkfd.xn--p1ai)");
}

TEST_CASE("an invalid IDN says why and keeps the name as written", "[idn]") {
  // Punycode that decodes to nothing IDNA2008 allows.
  auto bad = dns::idn("xn--abc.example");
  CHECK_FALSE(bad.valid());
  CHECK(bad.ascii == "xn--abc.example");
  CHECK(bad.unicode == "xn--abc.example");
  CHECK(bad.problem.find("'xn--abc.example' is not a valid internationalized domain name") == 0);
  CHECK_FALSE(dns::idn("XN--ZZ-ZZZZZ.example").valid());
  // U+2603 SNOWMAN is DISALLOWED in IDNA2008 (RFC 5892), though IDNA2003 allowed it.
  CHECK_FALSE(dns::idn("☃.example").valid());
  CHECK_FALSE(dns::idn("xn--n3h.example").valid());
  // U+200D ZERO WIDTH JOINER is CONTEXTJ: not after a letter like this (RFC 5892 Appendix A.2).
  CHECK_FALSE(dns::idn("a\u200Db.example").valid());
  CHECK_FALSE(dns::idn("-пример.рф").valid());            // a hyphen at the start (RFC 5891 §5.4)
  CHECK_FALSE(dns::idn("\xD0\xBF\xFF.example").valid());  // not UTF-8
}
