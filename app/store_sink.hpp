// The delivery sink of `mxlens serve`: it accepts recipients that are known test addresses
// (creating tests in catch-all mode), stores every message through the commit queue, has it
// analyzed by the worker pool, stores the analysis, and answers 250 only after both commits.
// It records every session.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "analyzers/worker/worker.hpp"
#include "receiver/delivery_sink.hpp"
#include "storage/commit_queue.hpp"
#include "storage/store.hpp"
#include "webui/hub.hpp"
#include "webui/metrics.hpp"

namespace mxlens::app {

struct sink_settings {
  std::string domain;
  std::string hostname;  // the authserv-id of Authentication-Results
  bool catch_all = false;
  int retention_days = 30;
};

class store_sink final : public receiver::delivery_sink {
 public:
  // `reader` answers recipient look-ups on the blocking pool; writes go through `queue`.
  store_sink(boost::asio::thread_pool& blocking, storage::store& reader,
             storage::commit_queue& queue, analyzers::worker::pool& analysis, webui::hub& events,
             webui::metrics& counters, const core::clock& clock, sink_settings settings);

  boost::asio::awaitable<receiver::recipient_verdict> recipient(
      const std::string& address) override;
  boost::asio::awaitable<receiver::reply> deliver(core::delivery message,
                                                  std::vector<std::string> keys) override;
  void session_closed(core::session_record session) override;

  // Analyzes the deliveries stored without a report (the server stopped between storing a
  // message and storing its report; the client got no reply). Run once at start.
  boost::asio::awaitable<void> analyze_pending();

 private:
  // Looks the test up (creating it where allowed) on the blocking pool.
  receiver::recipient_verdict lookup(const std::string& address);
  // What the analysis needs from the store: whether the test is judged as a bulk sender, and
  // the TLS handshakes that failed from this client since the test began, in earlier sessions
  // (a sender that falls back to plaintext after a failed handshake connects anew).
  struct test_context {
    bool bulk = false;
    std::vector<core::failed_handshake> failed_handshakes;
  };
  test_context context_of(const std::string& test_id, const std::string& client_ip);
  // The analysis of a delivery to `test_id`, with the test's context.
  boost::asio::awaitable<analyzers::worker::analysis_result> analyzed(
      analyzers::analysis_input input, std::string test_id, std::string client_ip);

  boost::asio::thread_pool& blocking_;
  storage::store& reader_;
  std::mutex reader_mutex_;
  storage::commit_queue& queue_;
  analyzers::worker::pool& analysis_;
  webui::hub& events_;
  webui::metrics& metrics_;
  const core::clock& clock_;
  sink_settings settings_;
};

}  // namespace mxlens::app
