// The SMTP listeners: accepts connections, enforces the connection limits (in total and per
// client IP), runs one smtp_session per connection on its own strand, and drains them on stop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "certs/server_tls.hpp"
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
  bool admit(const std::string& ip);
  void release(const std::string& ip, smtp_session* session);

  boost::asio::io_context& io_;
  session_config config_;
  certs::server_tls& tls_;
  delivery_sink& sink_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;

  mutable std::mutex mutex_;
  std::size_t connections_ = 0;
  std::map<std::string, std::size_t> per_ip_;
  std::unordered_map<smtp_session*, std::weak_ptr<smtp_session>> sessions_;
  bool stopped_ = false;
};

boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& text);

}  // namespace mxlens::receiver
