// Counters for GET /metrics (Prometheus text format 0.0.4). Thread-safe; cheap to bump.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "storage/commit_queue.hpp"

namespace mxlens::webui {

// The store's commit durations, as the histogram mxlens_store_commit_seconds.
std::string render(const storage::commit_timing& t);

class metrics {
 public:
  void session(const std::string& outcome);
  // A delivery whose report is stored: its TLS version ("none" in plaintext), how long the
  // analysis took, and how many analysis errors it had.
  void delivery(const std::string& tls_version, double analysis_seconds, std::size_t errors);
  void http_response(int status);

  std::string render() const;

 private:
  // Analysis latency buckets, in seconds.
  static constexpr std::array<double, 10> bounds{0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,  1,     2.5,  10};
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> sessions_;
  std::map<std::string, std::uint64_t> tls_versions_;
  std::map<int, std::uint64_t> http_;
  std::array<std::uint64_t, bounds.size()> buckets_{};
  std::uint64_t deliveries_ = 0;
  std::uint64_t analysis_errors_ = 0;
  double analysis_sum_ = 0;
};

}  // namespace mxlens::webui
