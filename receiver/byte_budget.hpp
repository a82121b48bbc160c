// The octets of message data every session holds at once, from the first octet of DATA until the
// message is stored (or refused): one budget for the whole server, so that many large messages
// at once end in 452 4.3.1 for some of them (RFC 5321 §4.2.2, RFC 3463 §3.4) and never in the
// server running out of memory. Shared by sessions on any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace mxlens::receiver {

class byte_budget {
 public:
  explicit byte_budget(std::uint64_t capacity) : capacity_(capacity) {}
  byte_budget(const byte_budget&) = delete;
  byte_budget& operator=(const byte_budget&) = delete;

  // Takes n octets if that many are free; false (and nothing taken) if not.
  bool take(std::uint64_t n) {
    auto used = used_.load(std::memory_order_relaxed);
    do {
      if (n > capacity_ - used) return false;
    } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
    return true;
  }
  void give_back(std::uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }

  std::uint64_t capacity() const { return capacity_; }
  std::uint64_t free() const { return capacity_ - used_.load(std::memory_order_relaxed); }

 private:
  const std::uint64_t capacity_;
  std::atomic<std::uint64_t> used_{0};
};

// What one message holds of a budget, given back when the lease goes. A lease of no budget
// (nullptr) grants everything: the command line and the unit tests run without one.
class budget_lease {
 public:
  explicit budget_lease(byte_budget* budget = nullptr) : budget_(budget) {}
  budget_lease(budget_lease&& other) noexcept
      : budget_(other.budget_), held_(std::exchange(other.held_, 0)) {}
  budget_lease& operator=(budget_lease&& other) noexcept {
    if (this != &other) {
      release();
      budget_ = other.budget_;
      held_ = std::exchange(other.held_, 0);
    }
    return *this;
  }
  budget_lease(const budget_lease&) = delete;
  budget_lease& operator=(const budget_lease&) = delete;
  ~budget_lease() { release(); }

  // Holds at least n octets, taking more in steps of `step` so that a growing message asks the
  // shared counter once per step, not once per read. False when the budget has not enough left.
  bool hold(std::uint64_t n, std::uint64_t step = std::uint64_t{256} * 1024) {
    if (!budget_ || n <= held_) return true;
    const auto rounded = n + step - n % step;
    for (auto want : {rounded, n}) {  // the exact amount when a whole step is not free
      if (budget_->take(want - held_)) {
        held_ = want;
        return true;
      }
    }
    return false;
  }
  void release() {
    if (budget_ && held_ > 0) budget_->give_back(held_);
    held_ = 0;
  }
  std::uint64_t held() const { return held_; }

 private:
  byte_budget* budget_;
  std::uint64_t held_ = 0;
};

}  // namespace mxlens::receiver
