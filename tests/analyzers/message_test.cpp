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

TEST_CASE("placeholders: the five forms around a variable name, each once", "[message]") {
  using message::find_placeholders;
  CHECK(find_placeholders("Hi {{first_name}}, {{ first_name }} and {{{name}}}", 10) ==
        std::vector<std::string>{"{{first_name}}", "{{ first_name }}", "{{name}}"});
  CHECK(find_placeholders("Dear %%FirstName%%, code %%coupon.code%%", 10) ==
        std::vector<std::string>{"%%FirstName%%", "%%coupon.code%%"});
  CHECK(find_placeholders("Hello *|FNAME|*, see *|MC:SUBJECT|*", 10) ==
        std::vector<std::string>{"*|FNAME|*", "*|MC:SUBJECT|*"});
  CHECK(find_placeholders("Hello [FirstName] [First Name] [first_name] of [Company]", 10) ==
        std::vector<std::string>{"[FirstName]", "[First Name]", "[first_name]", "[Company]"});
  CHECK(find_placeholders("Hi ${name}, your ${order.id}", 10) ==
        std::vector<std::string>{"${name}", "${order.id}"});
  CHECK(find_placeholders("{{a}} {{a}} {{a}}", 10).size() == 1);
  CHECK(find_placeholders("{{a}} {{b}} {{c}}", 2).size() == 2);
}

TEST_CASE("placeholders: reference markers, links, code and prose are not", "[message]") {
  using message::find_placeholders;
  CHECK(find_placeholders("As shown in [1] and [2], [sic], see [PDF] or [Note]", 10).empty());
  CHECK(find_placeholders("Read [Name](https://example.com/about) there", 10).empty());
  CHECK(find_placeholders("echo ${1} ${ } ${a b} ${#arr} $name {{ a + b }} {{}}", 10).empty());
  CHECK(find_placeholders("100%% sure, 50%% off %% %%", 10).empty());
  CHECK(find_placeholders("a *| b |* c *||*", 10).empty());
  CHECK(find_placeholders("{{" + std::string(200, 'a') + "}}", 10).empty());
  CHECK(find_placeholders("unterminated {{name and ${name and %%name", 10).empty());
}

TEST_CASE("placeholders: in the decoded Subject and the text, only the visible text of HTML",
          "[message]") {
  const auto facts = message::inspect(
      "From: a@example.com\r\nSubject: =?utf-8?q?Hello_=7B=7Bfirst=5Fname=7D=7D?=\r\n"
      "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear *|FNAME|*\r\n"
      "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
      "<a href=\"{{unsubscribe_url}}\" title=\"[FirstName]\">Hi ${name}</a>"
      "<script>var x = `${user}`;</script>\r\n--b--\r\n",
      false);
  REQUIRE(facts.placeholders.size() == 3);
  CHECK(facts.placeholders[0].text == "{{first_name}}");
  CHECK(facts.placeholders[0].where == "Subject");
  CHECK(facts.placeholders[1].text == "*|FNAME|*");
  CHECK(facts.placeholders[1].where == "text/plain");
  CHECK(facts.placeholders[2].text == "${name}");
  CHECK(facts.placeholders[2].where == "text/html");
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
