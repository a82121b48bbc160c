#include "core/test_id.hpp"

#include <catch2/catch.hpp>
#include <set>

using namespace mxlens::core;

TEST_CASE("test ids are 16 lowercase base32 characters and do not repeat", "[core]") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = new_test_id();
    REQUIRE(id.size() == 16);
    REQUIRE(id.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567") == std::string::npos);
    REQUIRE(is_valid_test_id(id));
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("a recipient's local part names its test, with or without +tag", "[core]") {
  CHECK(test_id_of_local_part("abcdefgh23456789") == "abcdefgh23456789");
  CHECK(test_id_of_local_part("ABCDEFGH23456789+pool-a") == "abcdefgh23456789");
  CHECK_FALSE(test_id_of_local_part("short"));
  CHECK_FALSE(test_id_of_local_part("has.dot.in.it.x"));
  CHECK_FALSE(test_id_of_local_part("+tagonly"));
}

TEST_CASE("mailboxes split at the last @ and lowercase the domain", "[core]") {
  auto m = split_mailbox("\"a@b\"@Example.ORG");
  REQUIRE(m);
  CHECK(m->local == "\"a@b\"");
  CHECK(m->domain == "example.org");
  CHECK_FALSE(split_mailbox("nodomain"));
  CHECK_FALSE(split_mailbox("@example.org"));
  CHECK_FALSE(split_mailbox("user@"));
}
