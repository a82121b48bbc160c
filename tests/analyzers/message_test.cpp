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
