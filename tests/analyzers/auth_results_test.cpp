// The Authentication-Results formatter, against RFC 8601's grammar and examples.
#include "analyzers/analysis/auth_results.hpp"

#include <catch2/catch.hpp>

using namespace mxlens::analyzers;
namespace core = mxlens::core;

TEST_CASE("no results gives 'none' (RFC 8601 §2.2)", "[auth-results]") {
  CHECK(authentication_results("mx.example.com", {}) == "mx.example.com; none");
}

TEST_CASE("methods follow in order, one per folded line", "[auth-results]") {
  auto text = authentication_results(
      "mx.example.com",
      {{"spf", core::auth_result::pass, "", {{"smtp.mailfrom", "sender@example.net"}}, ""},
       {"dkim", core::auth_result::pass, "", {{"header.d", "example.net"}, {"header.s", "s1"}}, ""},
       {"dmarc", core::auth_result::fail, "", {{"header.from", "example.net"}}, "p=reject"}});
  CHECK(text ==
        "mx.example.com; spf=pass smtp.mailfrom=sender@example.net;\r\n"
        "\tdkim=pass header.d=example.net header.s=s1;\r\n"
        "\tdmarc=fail header.from=example.net (p=reject)");
}

TEST_CASE("reasons and values that are not tokens are quoted; comments escaped", "[auth-results]") {
  auto text = authentication_results("mx", {{"dkim",
                                             core::auth_result::fail,
                                             "body hash did not verify",
                                             {{"header.d", "a;b.example"}},
                                             "odd (comment)"}});
  CHECK(text ==
        "mx; dkim=fail reason=\"body hash did not verify\" header.d=\"a;b.example\" "
        "(odd \\(comment\\))");
  // Header text from the sender can never break out of the field.
  auto injected = authentication_results(
      "mx", {{"spf", core::auth_result::pass, "", {{"smtp.helo", "x\r\nX-Evil: 1"}}, ""}});
  CHECK(injected.find("\r\nX-Evil") == std::string::npos);
}
