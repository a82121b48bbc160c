#include "core/rate_limit.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using mxlens::core::client_network;
using mxlens::core::rate_limiter;

TEST_CASE("a client is counted by its address, or by its IPv6 /64", "[core]") {
  CHECK(client_network("192.0.2.7") == "192.0.2.7");
  CHECK(client_network("::ffff:192.0.2.7") == "192.0.2.7");
  CHECK(client_network("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
  CHECK(client_network("2001:db8:1:2::1") == client_network("2001:db8:1:2:ffff::9"));
  CHECK(client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1"));
  CHECK(client_network("").empty());
}

TEST_CASE("at most N events in any window, per client", "[core]") {
  rate_limiter limit(3, std::chrono::seconds(60));
  CHECK_FALSE(limit.refuse("192.0.2.1", 1'000));
  CHECK_FALSE(limit.refuse("192.0.2.1", 2'000));
  CHECK_FALSE(limit.refuse("192.0.2.1", 3'000));
  auto wait = limit.refuse("192.0.2.1", 10'000);
  REQUIRE(wait);
  CHECK(wait->count() == 51'000);                  // until the first leaves the window
  CHECK_FALSE(limit.refuse("192.0.2.2", 10'000));  // another client
  CHECK(limit.refuse("192.0.2.1", 60'999));
  CHECK_FALSE(limit.refuse("192.0.2.1", 61'000));  // a refusal was not counted
  // Another address of the same /64 is the same client.
  rate_limiter v6(1, std::chrono::seconds(60));
  CHECK_FALSE(v6.refuse("2001:db8::1", 0));
  CHECK(v6.refuse("2001:db8::2", 1));
  // Many clients: the ones whose window has passed are forgotten, the others kept.
  rate_limiter many(1, std::chrono::seconds(1));
  for (int i = 0; i < 5000; ++i)
    CHECK_FALSE(many.refuse("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), i));
  CHECK(many.refuse("10.0.19.135", 5000));  // the last one, still in its window
}

TEST_CASE("periodic work is due once a period, whichever thread asks", "[core]") {
  mxlens::core::periodic every(std::chrono::milliseconds(200));
  std::atomic<int> due{0};
  std::vector<std::thread> askers;
  askers.reserve(4);
  for (int i = 0; i < 4; ++i)
    askers.emplace_back([&] {
      for (int n = 0; n < 1000; ++n)
        if (every.due()) ++due;
    });
  for (auto& t : askers) t.join();
  CHECK(due == 1);  // the first ask; the others came within the period
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  CHECK(every.due());
  CHECK_FALSE(every.due());
}
