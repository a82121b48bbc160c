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

TEST_CASE("MAIL FROM paths and parameters", "[receiver]") {
  auto p = ok("FROM:<a@b.example> SIZE=123 BODY=8BITMIME SMTPUTF8");
  CHECK(p.address == "a@b.example");
  REQUIRE(p.params.size() == 3);
  CHECK(p.params[0] == std::pair<std::string, std::string>{"SIZE", "123"});
  CHECK(p.params[2].first == "SMTPUTF8");
  CHECK(ok("from:<>").address.empty());
  CHECK(ok("FROM: <a@b.example>").address == "a@b.example");                // space tolerated
  CHECK(ok("FROM:<@relay.example:a@b.example>").address == "a@b.example");  // source route
  CHECK(ok("FROM:<\"x>y\"@b.example>").address == "\"x>y\"@b.example");
  CHECK_FALSE(ok("FROM:a@b.example").bracketed);
}

TEST_CASE("malformed paths get the RFC 3463 codes", "[receiver]") {
  CHECK(refused("TO:<a@b.example>").code == 501);
  CHECK(refused("FROM:<a@b.example").enhanced == "5.1.7");
  CHECK(refused("FROM:<nodomain>").enhanced == "5.1.7");
  CHECK(refused("TO:<>", "TO", false).enhanced == "5.1.3");
  CHECK(refused("FROM:<a b@c.example>").code == 501);
  CHECK(refused("FROM:<" + std::string(300, 'a') + "@b.example>").code == 501);
  CHECK(refused("FROM:<a@b.example> SIZE=1 SIZE=2").enhanced == "5.5.4");
  CHECK(refused("FROM:<a@b.example> =x").code == 501);
}

TEST_CASE("postmaster without a domain is a valid recipient", "[receiver]") {
  CHECK(ok("TO:<Postmaster>", "TO", false).address == "Postmaster");
}

TEST_CASE("replies carry the enhanced code on every line", "[receiver]") {
  reply r;
  r.code = 214;
  r.enhanced = "2.0.0";
  r.lines = {"one", "two"};
  CHECK(r.wire() == "214-2.0.0 one\r\n214 2.0.0 two\r\n");
  CHECK(reply(550, "5.7.1", "no").wire() == "550 5.7.1 no\r\n");
}
