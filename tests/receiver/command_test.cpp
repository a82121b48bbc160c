#include "receiver/command.hpp"

#include <catch2/catch.hpp>

using namespace mxlens::receiver;

namespace {
path_command ok(std::string_view args, std::string_view kw = "FROM", bool sender = true) {
  auto r = parse_path_command(args, kw, sender);
  if (auto* e = std::get_if<reply>(&r)) FAIL("refused: " << e->wire());
  return std::get<path_command>(r);
}
reply refused(std::string_view args, std::string_view kw = "FROM", bool sender = true) {
  auto r = parse_path_command(args, kw, sender);
  REQUIRE(std::holds_alternative<reply>(r));
  return std::get<reply>(r);
}
}  // namespace

TEST_CASE("command lines split into an uppercased verb and arguments", "[receiver]") {
  auto c = split_command("mail FROM:<a@b.example> SIZE=10  ");
  CHECK(c.verb == "MAIL");
  CHECK(c.args == "FROM:<a@b.example> SIZE=10");
  CHECK(split_command("QUIT").args.empty());
}

TEST_CASE("MAIL FROM parameters after the path", "[receiver]") {
  auto p = ok("FROM:<a@b.example> SIZE=123 BODY=8BITMIME SMTPUTF8");
  CHECK(p.address == "a@b.example");
  REQUIRE(p.params.size() == 3);
  CHECK(p.params[0] == std::pair<std::string, std::string>{"SIZE", "123"});
  CHECK(p.params[1] == std::pair<std::string, std::string>{"BODY", "8BITMIME"});
  CHECK(p.params[2].first == "SMTPUTF8");
  CHECK(ok("FROM:<\"a b\"@b.example>  SIZE=1").params.size() == 1);
}

// RFC 5321 §4.1.2 and §4.1.3, with RFC 6531 §3.3: paths that parse, and the address kept.
TEST_CASE("paths RFC 5321 accepts", "[receiver]") {
  struct accepted {
    std::string args;
    bool sender;
    std::string address;
  };
  const std::vector<accepted> cases = {
      {"FROM:<a@b.example>", true, "a@b.example"},
      {"from:<>", true, ""},                                  // the null reverse-path
      {"FROM: <a@b.example>", true, "a@b.example"},           // a space after the colon
      {"FROM:<a@localhost>", true, "a@localhost"},            // one label
      {"FROM:<a@x-1.b2.example>", true, "a@x-1.b2.example"},  // hyphens inside labels
      {"FROM:<first.last+tag@b.example>", true, "first.last+tag@b.example"},
      {"FROM:<!#$%&'*+-/=?^_`{|}~@b.example>", true, "!#$%&'*+-/=?^_`{|}~@b.example"},
      // Source routes (RFC 5321 §4.1.1.3, appendix C): checked, then discarded.
      {"FROM:<@relay.example:a@b.example>", true, "a@b.example"},
      {"TO:<@one.example,@two.example:c@d.example>", false, "c@d.example"},
      // Quoted local parts, with '>', spaces, '@' and quoted pairs inside.
      {"FROM:<\"x>y\"@b.example>", true, "\"x>y\"@b.example"},
      {"FROM:<\"a b@c\"@b.example>", true, "\"a b@c\"@b.example"},
      {"FROM:<\"a\\\"b\\\\c\"@b.example>", true, "\"a\\\"b\\\\c\"@b.example"},
      {"FROM:<\"\"@b.example>", true, "\"\"@b.example"},
      // Address literals.
      {"TO:<a@[192.0.2.1]>", false, "a@[192.0.2.1]"},
      {"TO:<a@[IPv6:2001:db8::1]>", false, "a@[IPv6:2001:db8::1]"},
      {"TO:<a@[ipv6:2001:DB8:0:0:0:0:0:1]>", false, "a@[ipv6:2001:DB8:0:0:0:0:0:1]"},
      {"TO:<a@[IPv6:::1]>", false, "a@[IPv6:::1]"},
      {"TO:<a@[IPv6:::ffff:192.0.2.1]>", false, "a@[IPv6:::ffff:192.0.2.1]"},
      {"TO:<a@[IPv6:1:2:3:4:5:6:192.0.2.1]>", false, "a@[IPv6:1:2:3:4:5:6:192.0.2.1]"},
      // RCPT's Postmaster without a domain (RFC 5321 §4.1.1.3), and with one.
      {"TO:<Postmaster>", false, "Postmaster"},
      {"TO:<postmaster>", false, "postmaster"},
      {"TO:<Postmaster@b.example>", false, "Postmaster@b.example"},
      // RFC 6531 §3.3: UTF-8 in the local part and the domain (SMTPUTF8 is the session's call).
      {"FROM:<caf\xC3\xA9@b\xC3\xBC"
       "cher.example>",
       true,
       "caf\xC3\xA9@b\xC3\xBC"
       "cher.example"},
      {"FROM:<\"caf\xC3\xA9 x\"@b.example>", true, "\"caf\xC3\xA9 x\"@b.example"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    CHECK(ok(c.args, c.sender ? "FROM" : "TO", c.sender).address == c.address);
  }
}

TEST_CASE("paths RFC 5321 refuses, with the problem named", "[receiver]") {
  struct refusal {
    std::string args;
    bool sender;
    std::string enhanced;
    std::string says;  // in the reply's text
  };
  const std::vector<refusal> cases = {
      {"FROM:a>b@x>", true, "5.1.7", "angle brackets"},
      {"FROM:a@b.example", true, "5.1.7", "angle brackets"},
      {"FROM:", true, "5.1.7", "angle brackets"},
      // Only the first source route was stripped, leaving "@<x@c.example".
      {"FROM:<@a,@b:@<x@c.example>", true, "5.1.7", "the local part is empty"},
      {"FROM:<@a.example:@b.example:c@d.example>", true, "5.1.7", "the local part is empty"},
      {"FROM:<@a.example c@d.example>", true, "5.1.7", "invalid character ' ' in the source route"},
      {"FROM:<@a.example,b.example:c@d.example>", true, "5.1.7", "begins with '@'"},
      {"FROM:<@a.example>", true, "5.1.7", "':' that ends it"},
      {"FROM:<a@b.example", true, "5.1.7", "no '>'"},
      {"FROM:<nodomain>", true, "5.1.7", "no '@' and domain"},
      {"FROM:<Postmaster>", true, "5.1.7", "no '@' and domain"},  // RCPT only
      {"TO:<>", false, "5.1.3", "null path"},
      {"TO:<a b@c.example>", false, "5.1.3", "invalid character ' ' in the local part"},
      {"FROM:<a..b@c.example>", true, "5.1.7", "two dots"},
      {"FROM:<.a@c.example>", true, "5.1.7", "begins with '.'"},
      {"FROM:<a.@c.example>", true, "5.1.7", "ends with '.'"},
      {"FROM:<a(b)@c.example>", true, "5.1.7", "invalid character '(' in the local part"},
      {"FROM:<\"abc@b.example>", true, "5.1.7", "no closing"},
      {"FROM:<a@>", true, "5.1.7", "empty label"},
      {"FROM:<a@b..example>", true, "5.1.7", "empty label"},
      {"FROM:<a@b.example.>", true, "5.1.7", "empty label"},
      {"FROM:<a@-b.example>", true, "5.1.7", "'-'"},
      {"FROM:<a@b-.example>", true, "5.1.7", "'-'"},
      {"FROM:<a@b_c.example>", true, "5.1.7", "invalid character '_' in the domain"},
      {"FROM:<a@b.example c>", true, "5.1.7", "invalid character ' ' in the domain"},
      {"FROM:<a@b@c.example>", true, "5.1.7", "invalid character '@' in the domain"},
      {"TO:<a@[192.0.2.256]>", false, "5.1.3", "not an IPv4 address"},
      {"TO:<a@[192.0.2]>", false, "5.1.3", "not an IPv4 address"},
      {"TO:<a@[192.0.2.1>", false, "5.1.3", "without its ']'"},
      {"TO:<a@[192.0.2.1]x>", false, "5.1.3", "invalid character 'x' in the address literal"},
      {"TO:<a@[IPv6:2001:db8::1::2]>", false, "5.1.3", "not an IPv6 address"},
      {"TO:<a@[IPv6:1:2:3:4:5:6:7::]>", false, "5.1.3", "not an IPv6 address"},  // > 6 groups
      {"TO:<a@[IPv6:1:2:3:4:5:6:7]>", false, "5.1.3", "not an IPv6 address"},
      {"TO:<a@[IPv6:12345::1]>", false, "5.1.3", "not an IPv6 address"},
      {"TO:<a@[IPv6:1:2:3:4:5::192.0.2.1]>", false, "5.1.3", "not an IPv6 address"},
      {"TO:<a@[x-tag:stuff]>", false, "5.1.3", "tag 'x-tag' is not registered"},
      {"FROM:<caf\xE9@b.example>", true, "5.1.7", "not UTF-8"},  // Latin-1
      {"FROM:<a@b\xC3.example>", true, "5.1.7", "not UTF-8"},
      {"FROM:<" + std::string(300, 'a') + "@b.example>", true, "5.1.7", "256 octets"},
      // The keyword and the parameters.
      {"TO:<a@b.example>", true, "5.5.4", "Syntax: MAIL FROM:"},
      {"FROM:<a@b.example>x", true, "5.5.4", "space before parameters"},
      {"FROM:<a@b.example> SIZE=1 SIZE=2", true, "5.5.4", "given twice"},
      {"FROM:<a@b.example> =x", true, "5.5.4", "Malformed parameter"},
      // Named as printable ASCII: the reply text is RFC 5321 4.2's textstring (tests/fuzz).
      {"FROM:<a@b.example> X=\r\x1b[31m\xff", true, "5.5.4",
       "Malformed parameter X=\\x0D\\x1B[31m\\xFF"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto parsed = parse_path_command(c.args, c.sender ? "FROM" : "TO", c.sender);
    const auto* refusal = std::get_if<reply>(&parsed);
    CHECK(refusal);  // each case is reported, not only the first
    if (!refusal) continue;
    const auto& r = *refusal;
    CHECK(r.code == 501);
    CHECK(r.enhanced == c.enhanced);
    REQUIRE(r.lines.size() == 1);
    CHECK_THAT(r.lines.front(), Catch::Matchers::Contains(c.says));
  }
}

TEST_CASE("a path of 256 octets is accepted, one more is not (RFC 5321 4.5.3.1.3)", "[receiver]") {
  const std::string local(256 - std::string("<@b.example>").size(), 'a');
  CHECK(ok("FROM:<" + local + "@b.example>").address == local + "@b.example");
  CHECK(refused("FROM:<a" + local + "@b.example>").enhanced == "5.1.7");
}

TEST_CASE("replies carry the enhanced code on every line", "[receiver]") {
  reply r;
  r.code = 214;
  r.enhanced = "2.0.0";
  r.lines = {"one", "two"};
  CHECK(r.wire() == "214-2.0.0 one\r\n214 2.0.0 two\r\n");
  CHECK(reply(550, "5.7.1", "no").wire() == "550 5.7.1 no\r\n");
}
