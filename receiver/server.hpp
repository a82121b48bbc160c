// The SMTP listeners: accepts connections, enforces the connection limits (in total and per
// client IP), runs one smtp_session per connection on its own strand, and drains them on stop.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "certs/server_tls.hpp"
#include "core/rate_limit.hpp"
#include "receiver/delivery_sink.hpp"
#include "receiver/smtp_session.hpp"

namespace mxlens::receiver {

class server {
 public:
  using tcp = boost::asio::ip::tcp;

  // Binds every endpoint now (throws std::system_error naming the address on failure).
  server(boost::asio::io_context& io, const std::vector<tcp::endpoint>& endpoints,
         session_config config, certs::server_tls& tls, delivery_sink& sink);

  // The addresses actually bound (port 0 becomes the port the system chose).
  std::vector<tcp::endpoint> local_endpoints() const;

  void start();
  // Stops accepting and asks every session to close (each answers 421 4.3.2 at its next read).
  void stop();

  std::size_t active_sessions() const;

 private:
  boost::asio::awaitable<void> accept_loop(tcp::acceptor& acceptor);
  boost::asio::awaitable<void> refuse(tcp::socket socket, std::string reason);
  // Takes a slot for a client at `ip` in `network`, or says why there is none.
  std::optional<std::string> admit(const std::string& ip, const std::string& network);
  void release(const std::string& ip, const std::string& network, smtp_session* session);
  void update_stress();  // under mutex_

  boost::asio::io_context& io_;
  session_config config_;
  certs::server_tls& tls_;
  delivery_sink& sink_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;

  mutable std::mutex mutex_;
  std::size_t connections_ = 0;
  std::map<std::string, std::size_t> per_ip_;
  std::map<std::string, std::size_t> per_network_;
  std::atomic<bool> under_stress_{false};
  // Connections admitted in the last minute, by IP and by network (when limited).
  std::optional<core::rate_limiter> rate_by_ip_;
  std::optional<core::rate_limiter> rate_by_network_;
  std::unordered_map<smtp_session*, std::weak_ptr<smtp_session>> sessions_;
  bool stopped_ = false;
};

boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& text);

// The network a client's connections are counted in: its IPv4 /24, or its IPv6 /64 ("192.0.2.0/24",
// "2001:db8:1:2::/64"); an IPv4-mapped IPv6 address is its IPv4 address.
std::string network_of(const boost::asio::ip::address& address);

}  // namespace mxlens::receiver
