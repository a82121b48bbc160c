// The delivery pipeline of `mxlens serve`: what happens to a message between the end of its DATA
// and the reply, in one code path (run) for a live delivery and for one recovered at start:
//   1. context  the receiving tests' settings and the client's earlier failed TLS handshakes,
//               read from the store (a sender that falls back to plaintext connects anew);
//   2. analysis in a worker process (analyzers/worker);
//   3. policy   the reply and the disposition the report records (today the accept profile);
//   4. storage  one transaction through the writer: the message once, a row per receiving test,
//               each with its report. It comes before the reply: the sender holds the message
//               until its 250, so a stop before the commit loses nothing it was told was safe;
//   5. notice   the tests' event streams, the metrics and the log.
// Recipients (RCPT) are looked up here too; a catch-all test is created through the writer.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "analyzers/worker/worker.hpp"
#include "app/disk_guard.hpp"
#include "core/rate_limit.hpp"
#include "receiver/delivery_sink.hpp"
#include "storage/commit_queue.hpp"
#include "storage/store.hpp"
#include "webui/hub.hpp"
#include "webui/metrics.hpp"

namespace mxlens::app {

// How far back a delivery looks for its client's failed TLS handshakes (report.schema.json
// tls.failed_handshakes, CHECKS.md tls.fallback).
inline constexpr core::unix_ms failure_window_ms = core::unix_ms{15} * 60 * 1000;

// The failed handshakes of the last failure_window_ms, by client address, as the receiver reports
// them: a session reaches the store only when it ends, and a sender that falls back to plaintext
// reconnects at once. Bounded: the newest 10 per address, 100,000 in all.
class recent_failures {
 public:
  void add(const core::failed_handshake& f, core::unix_ms now);
  // Those from `client_ip` at or after `since`, oldest first.
  std::vector<core::failed_handshake> from(const std::string& client_ip, core::unix_ms since) const;

 private:
  void prune(core::unix_ms now);
  mutable std::mutex mutex_;
  std::map<std::string, std::deque<core::failed_handshake>> by_ip_;
  std::deque<std::pair<core::unix_ms, std::string>> order_;  // (at, ip), oldest first
};

// Sessions that said nothing (core::session_count), counted in memory and written about once a
// second; the first few of an address in each minute are stored whole, as examples.
class session_tally {
 public:
  static constexpr std::size_t kept_per_minute = 3;
  // Distinct addresses counted between two writes; the rest are counted as "(others)".
  static constexpr std::size_t most_addresses = 100'000;

  // Counts the session, unless it is one of the first of its address this minute: then it is
  // not counted and the caller stores it whole (true).
  bool keep_or_count(const core::session_record& s);
  // What was counted since the last take.
  std::vector<core::session_count> take();

 private:
  struct tally {
    std::int64_t connections = 0;
    std::int64_t refused = 0;
  };
  std::mutex mutex_;
  std::map<std::pair<std::string, core::unix_ms>, tally> counts_;
  core::unix_ms kept_minute_ = 0;
  std::map<std::string, std::size_t> kept_;  // sessions stored whole in kept_minute_
};

// Whether a session said nothing worth a row of its own: no EHLO or HELO, no TLS, no message, not
// a word from the client.
bool said_nothing(const core::session_record& s);

struct sink_settings {
  std::string domain;
  std::string hostname;  // the authserv-id of Authentication-Results
  bool catch_all = false;
  int retention_days = 30;
  std::size_t max_new_tests_per_minute = 60;  // catch-all tests created per client network
  disk_guard* disk = nullptr;                 // none: the disk is not watched
};

class pipeline final : public receiver::delivery_sink {
 public:
  // `reader` answers look-ups on the blocking pool; every write goes through `queue`.
  pipeline(boost::asio::thread_pool& blocking, storage::store& reader, storage::commit_queue& queue,
           analyzers::worker::pool& analysis, webui::hub& events, webui::metrics& counters,
           const core::clock& clock, sink_settings settings);

  boost::asio::awaitable<receiver::recipient_verdict> recipient(
      const std::string& address, const std::string& client_ip) override;
  boost::asio::awaitable<receiver::reply> deliver(core::delivery message,
                                                  std::vector<std::string> keys) override;
  void handshake_failed(const core::failed_handshake& f) override;
  void session_closed(core::session_record session) override;
  // Writes the counts of sessions that said nothing (also done about once a second as sessions
  // end); at shutdown, before the queue drains.
  void write_session_counts();

  // Runs the deliveries that a previous version stored without their report (it stored a
  // message before analysing it, and stopped between the two) through the pipeline. Once, at
  // start.
  boost::asio::awaitable<void> recover();

 private:
  // One delivery on its way through the pipeline.
  struct job {
    core::delivery delivery;         // facts and raw bytes
    std::vector<std::string> tests;  // the receiving tests (the first one's settings apply)
    std::int64_t stored_as = 0;      // recovered: the row's number (tests has its one test)
  };
  boost::asio::awaitable<receiver::reply> run(job j);

  // What a lookup found: the verdict, and a catch-all test to create before accepting.
  struct lookup_result {
    receiver::recipient_verdict verdict;
    std::optional<core::test_info> create;
  };
  lookup_result lookup(const std::string& address);
  struct test_context {
    bool bulk = false;
    std::vector<core::failed_handshake> failed_handshakes;
  };
  // The test's settings, and the client's failed handshakes at or after `since`.
  test_context context_of(const std::string& test_id, const std::string& client_ip,
                          core::unix_ms since);

  boost::asio::thread_pool& blocking_;
  storage::store& reader_;
  std::mutex reader_mutex_;
  storage::commit_queue& queue_;
  analyzers::worker::pool& analysis_;
  webui::hub& events_;
  webui::metrics& metrics_;
  const core::clock& clock_;
  sink_settings settings_;
  recent_failures failures_;
  core::rate_limiter creations_;  // of catch-all tests
  session_tally tally_;
  core::periodic tally_due_{std::chrono::seconds(1)};  // when the counts are written
};

}  // namespace mxlens::app
