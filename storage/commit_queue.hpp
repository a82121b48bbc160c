// Group commit: one writer thread takes everything submitted since its last commit and commits
// it in one transaction, so that many deliveries share one fsync. Each submitter is called back
// only after its commit returned (or failed): the receiver answers 250 from that callback.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/store.hpp"

namespace mxlens::storage {

// Most deliveries one transaction takes; the rest wait for the next one.
inline constexpr std::size_t max_deliveries_per_commit = 256;
// How long a commit waits for more submissions to share it, and how many end the wait at once.
inline constexpr std::chrono::microseconds commit_gather{1000};
inline constexpr std::size_t commit_gather_count = 16;

// How long the store took to commit (its writes and fsync; not the wait for company before it).
struct commit_timing {
  static constexpr std::array<double, 9> bounds{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                0.05,  0.1,    0.25,  1};
  std::uint64_t commits = 0;
  double seconds = 0;                                  // their sum
  std::array<std::uint64_t, bounds.size()> at_most{};  // cumulative, as Prometheus buckets are
};

class commit_queue {
 public:
  // The numbers assigned to the submitted deliveries, in order; or an error text.
  struct outcome {
    std::vector<std::int64_t> numbers;
    std::string error;  // empty on success
  };
  using completion = std::function<void(outcome)>;
  using task = std::function<void(store&)>;

  explicit commit_queue(std::unique_ptr<store> s);
  ~commit_queue();  // drains what was submitted, then stops
  commit_queue(const commit_queue&) = delete;
  commit_queue& operator=(const commit_queue&) = delete;

  // Commits one message with its reports (outcome.numbers: one per test id); `done` runs on the
  // writer thread after the commit.
  void submit(message_delivery message, completion done);
  // Commits the deliveries together, each without a report.
  void submit(std::vector<core::delivery> deliveries, completion done);
  // Stores analyses of deliveries committed before; `done` runs after the commit (no numbers).
  void submit(std::vector<analysis_update> analyses, completion done);
  // Records a finished session; committed with whatever comes next.
  void submit(core::session_record session);
  // Runs `t` on the writer thread, between commits (retention, maintenance).
  void run(task t);

  // Returns once everything submitted before it is committed and called back, and the writer
  // waits for more: at shutdown, before what the callbacks use (the io_context) is destroyed.
  void drain();
  // Commits so far, for logs and benchmarks.
  std::uint64_t commits() const;
  commit_timing timing() const;

 private:
  struct pending_delivery {
    std::vector<core::delivery> deliveries;
    completion done;
    std::vector<analysis_update> analyses;
    std::vector<message_delivery> messages;  // none or one
    std::size_t rows() const {
      return deliveries.size() + (messages.empty() ? 0 : messages.front().test_ids.size());
    }
  };
  void loop();

  std::unique_ptr<store> store_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;  // the writer holds no work (drain)
  std::vector<pending_delivery> deliveries_;
  std::vector<core::session_record> sessions_;
  std::vector<task> tasks_;
  std::uint64_t commits_ = 0;
  commit_timing timing_;
  bool stopping_ = false;
  bool busy_ = false;  // the writer took work and has not finished it
  std::thread thread_;
};

}  // namespace mxlens::storage
