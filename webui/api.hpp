// The service behind the HTTP API and the pages: typed methods over the store, the hub that says
// when a test has news, and the server's state. It knows nothing of HTTP: route.cpp turns a
// request into calls of these methods, and their results into a response.
//
// Reads run on the blocking pool against the reader store (under its own mutex); writes (create,
// delete) run on the store's writer thread, between commits.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/rate_limit.hpp"
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
  // Per client network (core::client_network): connections, and long polls with event streams.
  // The last tenth of max_connections is kept for clients that hold fewer than two.
  std::size_t max_connections_per_client = 32;
  std::size_t max_waits_per_client = 8;
  std::size_t max_body = std::size_t{64} * 1024;
  std::size_t max_header = std::size_t{16} * 1024;
  std::size_t max_header_fields = 100;
  std::chrono::seconds request_timeout{30};   // to read one request, and keep-alive idle time
  std::chrono::seconds max_wait{300};         // longest long poll
  std::size_t max_new_tests_per_minute = 60;  // per client network (core/rate_limit.hpp)
  // The token of `Authorization: Bearer TOKEN` that shows the operator's own tests (postmaster);
  // empty: nobody sees them over HTTP.
  std::string admin_token;
  std::string static_dir;  // serve the pages' files from here instead of the embedded ones
};

// A page of a test's listing, and the test's per-source totals.
struct listing {
  std::vector<core::report_line> lines;
  bool more = false;  // lines beyond this page
  std::vector<storage::source_total> totals;
};

class api {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // `reader` is used under this object's mutex on `blocking`; writes go through `queue`.
  api(http_settings settings, boost::asio::thread_pool& blocking, storage::store& reader,
      storage::commit_queue& queue, hub& events, metrics& counters, const core::clock& clock);

  const http_settings& settings() const { return settings_; }
  // A long poll or an event stream of one client, counted while it waits.
  class wait_slot {
   public:
    wait_slot(api& owner, std::string client) : owner_(&owner), client_(std::move(client)) {}
    wait_slot(wait_slot&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), client_(std::move(other.client_)) {}
    wait_slot(const wait_slot&) = delete;
    wait_slot& operator=(const wait_slot&) = delete;
    wait_slot& operator=(wait_slot&&) = delete;
    ~wait_slot() {
      if (owner_) owner_->end_wait(client_);
    }

   private:
    api* owner_;
    std::string client_;
  };
  // A slot for one more wait of `client` (an address), or none when it holds
  // max_waits_per_client already.
  std::optional<wait_slot> take_wait(const std::string& client);
  // What a client refused a wait is told (503 too_many_waits).
  std::string too_many_waits() const {
    return "at most " + std::to_string(settings_.max_waits_per_client) +
           " long polls and event streams at once from one address";
  }

  // Whether an Authorization header value carries the admin token (compared in constant time).
  bool is_admin(std::string_view authorization) const;
  // Counts a test created for `client`, or says how long until it may create one
  // (http_settings::max_new_tests_per_minute).
  std::optional<std::chrono::milliseconds> refuse_creation(const std::string& client) {
    return creations_.refuse(client, clock_.now());
  }
  // Before the first request: where people reach the pages.
  void set_public_url(std::string url) { settings_.public_url = std::move(url); }
  bool stopping() const { return stopping_; }
  // Every wait ends, and new ones end at once.
  void stop();

  // The test, unless it does not exist or has expired (an id of the wrong form is neither).
  boost::asio::awaitable<std::optional<core::test_info>> find_test(const std::string& id);
  // A new test with a fresh id; nullopt if the id was taken meanwhile.
  boost::asio::awaitable<std::optional<core::test_info>> create_test(
      std::string label, bool bulk, std::vector<std::string> expect_from = {});
  // The sessions from the addresses the test expects, since it was made, newest first, as the
  // test may see them (see session_view).
  boost::asio::awaitable<std::vector<boost::json::object>> sessions_of(const core::test_info& t);
  // False if the test was gone already. Its waiters are woken.
  boost::asio::awaitable<bool> delete_test(const std::string& id);
  // A page of the test's listing (one past the page read to say whether there is more).
  boost::asio::awaitable<listing> list(const std::string& id, storage::line_page page);
  // Delivery n's report, once its analysis is stored.
  boost::asio::awaitable<std::optional<boost::json::object>> report(const std::string& id,
                                                                    std::int64_t n);
  // The size of delivery n as received; none if there is no such delivery.
  boost::asio::awaitable<std::optional<std::uint64_t>> raw_size(const std::string& id,
                                                                std::int64_t n);
  // Up to `length` octets of delivery n as received, from `offset` (storage::store::raw_part).
  boost::asio::awaitable<std::optional<std::string>> raw_part(const std::string& id, std::int64_t n,
                                                              std::uint64_t offset,
                                                              std::size_t length);
  // The report of delivery after+1, waiting for it until `deadline`; nullopt then, or on stop.
  boost::asio::awaitable<std::optional<boost::json::object>> next_report(const std::string& id,
                                                                         std::int64_t after,
                                                                         time_point deadline);
  // The listing lines numbered after+1, after+2, … up to the first delivery whose report is not
  // stored yet (a test's deliveries are numbered without gaps), at most `limit`.
  boost::asio::awaitable<std::vector<core::report_line>> lines_after(const std::string& id,
                                                                     std::int64_t after,
                                                                     std::size_t limit);
  // How often the test has moved (a report stored, the test deleted): read before a look at the
  // store, then passed to sleep_until_news, so that nothing stored in between is slept through.
  std::uint64_t generation(const std::string& id) { return hub_.generation(id); }
  // Sleeps until the test moves past `seen`, or the deadline; false at the deadline or on stop.
  boost::asio::awaitable<bool> sleep_until_news(const std::string& id, std::uint64_t seen,
                                                time_point deadline);
  // The Prometheus text of /metrics.
  std::string metrics_text() const;
  // The test as the API shows it, with the address of its page.
  boost::json::object test_json(const core::test_info& t) const;

 private:
  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F&, storage::store&>> read(F f);
  boost::asio::awaitable<std::vector<boost::json::object>> reports(const std::string& id,
                                                                   std::int64_t after,
                                                                   std::size_t limit);

  http_settings settings_;
  boost::asio::thread_pool& blocking_;
  storage::store& reader_;
  std::mutex reader_mutex_;
  storage::commit_queue& queue_;
  hub& hub_;
  metrics& metrics_;
  const core::clock& clock_;
  core::rate_limiter creations_;
  void end_wait(const std::string& client);
  std::mutex waits_mutex_;
  std::map<std::string, std::size_t> waits_;  // by client network
  std::atomic<bool> stopping_{false};
};

}  // namespace mxlens::webui
