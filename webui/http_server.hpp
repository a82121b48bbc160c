// The HTTP server: the JSON API under /api/v1 (DESIGN.md), /healthz and /metrics, on Beast.
// Reads go to the store on the blocking pool; writes (create, delete) run on the store's writer
// thread. Long polls and event streams sleep on timers the hub wakes when a report is stored.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/types.hpp"
#include "storage/commit_queue.hpp"
#include "storage/store.hpp"
#include "webui/hub.hpp"
#include "webui/metrics.hpp"

namespace mxlens::webui {

struct http_settings {
  std::vector<boost::asio::ip::tcp::endpoint> listen;
  std::string public_url;  // where people reach this server, for the tests' "url"
  std::string domain;      // of the test addresses
  int retention_days = 30;
  std::size_t max_connections = 256;
  std::size_t max_body = std::size_t{64} * 1024;
  std::size_t max_header = std::size_t{16} * 1024;
  std::size_t max_header_fields = 100;
  std::chrono::seconds request_timeout{30};  // to read one request, and keep-alive idle time
  std::chrono::seconds max_wait{300};        // longest long poll
  std::string static_dir;  // serve the pages' files from here instead of the embedded ones
};

class http_server {
 public:
  // `reader` is used under its own mutex on `blocking`; writes go through `queue`.
  http_server(boost::asio::io_context& io, http_settings settings,
              boost::asio::thread_pool& blocking, storage::store& reader,
              storage::commit_queue& queue, hub& events, metrics& counters,
              const core::clock& clock);
  void start();
  // Stops accepting; open waits end; requests in flight finish.
  void stop();
  std::vector<boost::asio::ip::tcp::endpoint> local_endpoints() const;
  // Before the first request: where people reach the pages (default: http:// + first endpoint).
  void set_public_url(std::string url);
  std::size_t active_connections() const { return active_; }

  class impl;

 private:
  std::shared_ptr<impl> impl_;
  std::atomic<std::size_t> active_{0};
};

// Per-source aggregates of a test's reports: for each sending IP (in the order they first
// delivered), what it sent and how, from the totals the store keeps.
boost::json::array source_aggregates(const std::vector<storage::source_total>& totals);

}  // namespace mxlens::webui
