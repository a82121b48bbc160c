#include "receiver/byte_budget.hpp"

#include <catch2/catch.hpp>

using mxlens::receiver::budget_lease;
using mxlens::receiver::byte_budget;

TEST_CASE("leases take from one budget in steps and give it back when they go", "[receiver]") {
  byte_budget budget(1000);
  {
    budget_lease a(&budget);
    CHECK(a.hold(10, 100));
    CHECK(a.held() == 100);  // a whole step
    CHECK(budget.free() == 900);
    CHECK(a.hold(100, 100));  // within what it holds: the counter is not asked
    CHECK(budget.free() == 900);
    budget_lease b(&budget);
    CHECK(b.hold(870, 200));  // a step would be 1000, more than is free: 870 exactly
    CHECK(b.held() == 870);
    CHECK_FALSE(b.hold(901, 200));  // 31 more are not there
    CHECK(b.held() == 870);
    CHECK(budget.free() == 30);
    budget_lease moved = std::move(b);
    CHECK(budget.free() == 30);  // a moved lease holds what it held, once
  }
  CHECK(budget.free() == 1000);
  budget_lease unbounded;  // no budget: everything is granted
  CHECK(unbounded.hold(1ull << 40));
}
