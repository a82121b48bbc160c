#include "core/rate_limit.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>

namespace mxlens::core {

std::string client_network(std::string_view address) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(address), ec);
  if (ec) return std::string(address);
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).to_string();
  if (a.is_v4()) return a.to_string();
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

rate_limiter::rate_limiter(std::size_t most, std::chrono::milliseconds window)
    : most_(most), window_(window) {}

std::optional<std::chrono::milliseconds> rate_limiter::refuse(std::string_view client,
                                                              unix_ms now) {
  std::lock_guard lock(mutex_);
  if (events_.size() >= prune_at_) prune(now);
  auto& times = events_[client_network(client)];
  while (!times.empty() && times.front() <= now - window_.count()) times.pop_front();
  if (times.size() >= most_)
    return std::chrono::milliseconds(times.front() + window_.count() - now);
  times.push_back(now);
  return std::nullopt;
}

// Forgets the clients with nothing in the window; keeps the bound at twice the clients left, so
// that a flood from many addresses costs a pass now and then, not one per event.
void rate_limiter::prune(unix_ms now) {
  std::erase_if(events_, [&](const auto& e) {
    return e.second.empty() || e.second.back() <= now - window_.count();
  });
  prune_at_ = std::max<std::size_t>(1024, 2 * events_.size());
}

bool periodic::due() {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  auto last = last_.load();
  return now - last >= period_ && last_.compare_exchange_strong(last, now);
}

}  // namespace mxlens::core
