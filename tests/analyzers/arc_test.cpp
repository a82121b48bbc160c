// ARC (RFC 8617): the DKIM canonicalizations it signs with, and the chain structure rules that
// fail a chain before any key is asked (hostile headers included). The signatures themselves are
// checked against dkimpy's seals in the golden cases (tests/cases/arc-*).
#include <catch2/catch.hpp>

#include <string>

#include "analyzers/arc/arc.hpp"
#include "analyzers/dns/resolver.hpp"
#include "core/json.hpp"

using namespace mxlens::analyzers;

namespace {

// Structural failures ask nothing: a resolver whose upstream is a closed port would time out.
arc::result validate(const std::string& raw) {
  dns::settings s;
  s.upstream = "127.0.0.1@9";
  s.timeout = std::chrono::milliseconds(50);
  dns::resolver r(s);
  dns::lookups l(r);
  return arc::validate(l, raw);
}

std::string set(int i, const std::string& cv) {
  const auto n = std::to_string(i);
  return "ARC-Seal: i=" + n + "; a=rsa-sha256; cv=" + cv + "; d=x.example; s=s; b=AAAA\r\n" +
         "ARC-Message-Signature: i=" + n +
         "; a=rsa-sha256; c=relaxed/relaxed; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n" +
         "ARC-Authentication-Results: i=" + n + "; mx.x.example; spf=pass\r\n";
}

const std::string rest = "From: a@x.example\r\nSubject: hi\r\n\r\nbody\r\n";

}  // namespace

TEST_CASE("relaxed header canonicalization (RFC 6376 §3.4.2, the example of §3.4.6)", "[arc]") {
  CHECK(arc::relaxed_header("A", " X \r\n") == "a:X\r\n");
  CHECK(arc::relaxed_header("B ", " Y\t\r\n\tZ  \r\n") == "b:Y Z\r\n");
}

TEST_CASE("body canonicalizations (RFC 6376 §3.4.3, §3.4.4, §3.4.6)", "[arc]") {
  const std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  CHECK(arc::canonical_body(body, true) == " C\r\nD E\r\n");
  CHECK(arc::canonical_body(body, false) == " C \r\nD \t E\r\n");
  CHECK(arc::canonical_body("", false) == "\r\n");
  CHECK(arc::canonical_body("", true).empty());
  CHECK(arc::canonical_body("\r\n\r\n", true).empty());
}

TEST_CASE("a message without ARC headers has cv=none", "[arc]") {
  auto r = validate(rest);
  CHECK(r.cv == "none");
  CHECK(r.instances == 0);
  CHECK(r.chain.empty());
}

TEST_CASE("the chain's structure fails it before any key is asked (RFC 8617 §5.1.1)", "[arc]") {
  SECTION("a gap in the instances") {
    auto r = validate(set(2, "pass") + set(1, "none").substr(0, 0) + rest);
    CHECK(r.cv == "fail");
    CHECK(r.failed_instance == 1);
    CHECK(r.reason->starts_with("no ARC set i=1"));
  }
  SECTION("the first set with cv=pass") {
    auto r = validate(set(1, "pass") + rest);
    CHECK(r.cv == "fail");
    CHECK(r.failed_instance == 1);
    CHECK(r.reason->starts_with("ARC-Seal i=1 has cv=pass where cv=none belongs"));
  }
  SECTION("a later set with cv=none") {
    auto r = validate(set(2, "none") + set(1, "none") + rest);
    CHECK(r.failed_instance == 2);
  }
  SECTION("the newest set says cv=fail: failed, whatever else") {
    auto r = validate(set(2, "fail") + rest);
    CHECK(r.failed_instance == 2);
    CHECK(r.reason->find("carries cv=fail") != std::string::npos);
  }
  SECTION("two seals for one instance") {
    auto r =
        validate(set(1, "none") + "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=y; s=s; b=A\r\n" + rest);
    CHECK(r.reason->starts_with("ARC set i=1 has 2 ARC-Seal fields"));
  }
  SECTION("instance numbers past 50, zero, or not numbers") {
    for (const char* i : {"51", "0", "007", "x", "", "99999999999999999999"}) {
      auto r = validate(std::string("ARC-Seal: i=") + i + "; cv=none; b=A\r\n" + rest);
      CHECK(r.cv == "fail");
      CHECK(r.reason->find("no usable i=") != std::string::npos);
    }
  }
  SECTION("bytes that are not UTF-8 in an AAR stay in the report, bounded") {
    auto r = validate(set(1, "none") + "X: y\r\n" + rest);
    std::string hostile = set(1, "none");
    hostile.replace(hostile.find("spf=pass"), 8, std::string(3000, '\xff'));
    auto h = validate(hostile + rest);
    REQUIRE(h.chain.size() == 1);
    CHECK(h.chain[0].results.size() == 1024);
    CHECK(r.chain.size() == 1);
  }
}

TEST_CASE("auth.arc reads back as it was written", "[arc]") {
  auto r = validate(set(2, "none") + set(1, "none") + rest);
  auto back = mxlens::core::from_json<arc::result>(boost::json::value_from(r));
  CHECK(back == r);
}
