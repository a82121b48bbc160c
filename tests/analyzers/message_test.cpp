// Header fields as the wire carried them, and the From addresses DMARC evaluates.
#include "analyzers/message/message.hpp"

#include <catch2/catch.hpp>

using namespace mxlens::analyzers;

TEST_CASE("the header block is split into fields, folding kept, body ignored", "[message]") {
  auto fields = message::header_fields(
      "From: a@example.com\r\nSubject: one\r\n two\r\nContent-Type: text/plain\r\n\r\nFrom: "
      "no\r\n");
  REQUIRE(fields.size() == 3);
  CHECK(fields[0].name == "From");
  CHECK(fields[1].raw_value == " one\r\n two");
  CHECK(message::unfold(fields[1].raw_value) == "one two");
  CHECK(fields[2].name == "Content-Type");  // GMime's header list would leave this out
}

TEST_CASE("From: one address, several addresses, several fields (RFC 7489 §6.6.1)", "[message]") {
  auto one = message::from(message::header_fields("From: \"A\" <a@Example.COM>\r\n\r\n"));
  CHECK(one.fields == 1);
  CHECK(one.domains == std::vector<std::string>{"example.com"});

  auto same = message::from(message::header_fields("From: a@example.com, b@example.com\r\n\r\n"));
  CHECK(same.addresses.size() == 2);
  CHECK(same.domains == std::vector<std::string>{"example.com"});

  auto two =
      message::from(message::header_fields("From: a@example.com,\r\n b@example.net\r\n\r\n"));
  CHECK(two.domains == std::vector<std::string>{"example.com", "example.net"});

  auto fields =
      message::from(message::header_fields("From: a@x.example\r\nFrom: b@y.example\r\n\r\n"));
  CHECK(fields.fields == 2);
  CHECK(fields.domains.empty());

  auto none = message::from(message::header_fields("To: a@x.example\r\n\r\n"));
  CHECK(none.fields == 0);

  auto broken = message::from(message::header_fields("From: not an address\r\n\r\n"));
  CHECK(broken.domains.empty());
}

TEST_CASE("From domains are read in A-labels, whichever form was written (RFC 8616 §3)",
          "[message]") {
  // RFC 6532: a UTF-8 header field; GMime gives U-labels for both.
  auto u = message::from(message::header_fields("From: a@ПРИМЕР.рф\r\n\r\n"));
  CHECK(u.domains == std::vector<std::string>{"xn--e1afmkfd.xn--p1ai"});
  auto a = message::from(message::header_fields("From: <a@xn--e1afmkfd.xn--p1ai>\r\n\r\n"));
  CHECK(a.domains == std::vector<std::string>{"xn--e1afmkfd.xn--p1ai"});
  auto both = message::from(
      message::header_fields("From: a@例え.テスト, b@xn--r8jz45g.xn--zckzah\r\n\r\n"));
  CHECK(both.domains == std::vector<std::string>{"xn--r8jz45g.xn--zckzah"});
  // The addresses stay as GMime shows them, local parts untouched.
  CHECK(both.addresses == std::vector<std::string>{"a@例え.テスト", "b@例え.テスト"});
}

TEST_CASE("an A-label GMime cannot decode is kept as written, not as GMime shows it", "[message]") {
  // GMime turns xn--abc into nothing: "a@.example".
  auto bad = message::from(message::header_fields("From: xn--abc@xn--abc.example\r\n\r\n"));
  CHECK(bad.domains == std::vector<std::string>{"xn--abc.example"});
  CHECK(bad.addresses.size() == 1);
}
