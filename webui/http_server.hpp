// The HTTP server, on Beast: the connections (accept, limits, keep-alive, shutdown) and the
// writing of event streams. What each request means is route.hpp's, over the api service
// (api.hpp); long polls and event streams sleep on timers the hub wakes when a report is stored.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>
#include <vector>

#include "storage/commit_queue.hpp"
#include "webui/api.hpp"

namespace mxlens::webui {

class http_server {
 public:
  // The api service's parts (api.hpp), and `io` for the connections.
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

}  // namespace mxlens::webui
