// Room on the disk the database lives on, so that a flood never fills it: below the minimum,
// sessions are no longer stored; below half of it, mail is deferred (452 4.3.1). What is left is
// room for what must still work on a nearly full disk: deleting tests, retention, the reports of
// messages already accepted.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>

#include "core/rate_limit.hpp"

namespace mxlens::app {

class disk_guard {
 public:
  enum class level { ok, low, critical };

  // `reusable` tells the octets the database holds free for reuse (storage::store::
  // reusable_bytes), which count as free: a deleted test makes room before the file shrinks.
  disk_guard(std::filesystem::path dir, std::uint64_t min_free);

  // Measures again if the last measure is a second old; call where the store may be read.
  void refresh(const std::function<std::uint64_t()>& reusable);
  level now() const { return level_.load(std::memory_order_relaxed); }
  std::uint64_t free_bytes() const { return free_.load(std::memory_order_relaxed); }
  std::uint64_t min_free() const { return min_free_; }

 private:
  std::filesystem::path dir_;
  std::uint64_t min_free_;
  core::periodic measure_{std::chrono::seconds(1)};
  std::atomic<std::uint64_t> free_{UINT64_MAX};
  std::atomic<level> level_{level::ok};
};

}  // namespace mxlens::app
