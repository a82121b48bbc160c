// Limits on how often one client may do something that costs the server (create a test, …):
// at most `most` events in any `window`, counted per client network, so that one host, or one
// IPv6 customer with a whole /64 (RFC 6177), is one client.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/types.hpp"

namespace mxlens::core {

// The network a client address is counted in: an IPv4 address itself (IPv4-mapped IPv6 too), an
// IPv6 address's /64, as text ("192.0.2.1", "2001:db8:1:2::/64"); the text itself if it is not
// an address.
std::string client_network(std::string_view address);

class rate_limiter {
 public:
  rate_limiter(std::size_t most, std::chrono::milliseconds window);

  // Counts an event of `client` at `now` when fewer than `most` were counted in the window before
  // it, and returns nothing; otherwise counts nothing and returns how long until one may be.
  std::optional<std::chrono::milliseconds> refuse(std::string_view client, unix_ms now);

 private:
  void prune(unix_ms now);

  const std::size_t most_;
  const std::chrono::milliseconds window_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<unix_ms>> events_;
  std::size_t prune_at_ = 1024;  // clients kept before the expired are looked for
};

// True at most once a `period`, whichever thread asks: for work done "about once a second"
// from paths that run far more often (a measure of the disk, a write of counts).
class periodic {
 public:
  explicit periodic(std::chrono::milliseconds period) : period_(period.count()) {}
  bool due();

 private:
  const std::int64_t period_;
  std::atomic<std::int64_t> last_{0};  // steady ms of the last time due() said true
};

}  // namespace mxlens::core
