#include "receiver/server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <sstream>
#include <stdexcept>

#include "core/log.hpp"
#include "core/test_id.hpp"

namespace mxlens::receiver {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
// Backoff after accept fails for lack of descriptors, so the loop does not spin.
constexpr auto accept_backoff = 100ms;
// How long a refused client gets to read its 421.
constexpr auto refuse_write_timeout = 5s;
}  // namespace

asio::ip::tcp::endpoint parse_endpoint(const std::string& text) {
  // ADDR:PORT, [IPv6]:PORT
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("expected ADDRESS:PORT");
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::invalid_argument("'" + host + "' is not an IP address");
  unsigned long p = 0;
  try {
    std::size_t used = 0;
    p = std::stoul(port, &used);
    if (used != port.size() || p > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw std::invalid_argument("'" + port + "' is not a port number");
  }
  return {addr, static_cast<unsigned short>(p)};
}

std::string network_of(const asio::ip::address& address) {
  auto a = address;
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    auto bytes = a.to_v4().to_bytes();
    bytes[3] = 0;
    return asio::ip::address_v4(bytes).to_string() + "/24";
  }
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

server::server(asio::io_context& io, const std::vector<tcp::endpoint>& endpoints,
               session_config config, certs::server_tls& tls, delivery_sink& sink)
    : io_(io), config_(std::move(config)), tls_(tls), sink_(sink) {
  config_.under_stress = &under_stress_;
  const auto& l = config_.limits;
  if (l.max_connection_rate_per_ip > 0)
    rate_by_ip_.emplace(l.max_connection_rate_per_ip, std::chrono::minutes(1));
  if (l.max_connection_rate_per_network > 0)
    rate_by_network_.emplace(l.max_connection_rate_per_network, std::chrono::minutes(1));
  for (const auto& ep : endpoints) {
    auto acc = std::make_unique<tcp::acceptor>(io_);
    boost::system::error_code ec;
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && ep.address().is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::ostringstream where;
      where << ep;
      throw std::system_error(ec, "cannot listen on " + where.str());
    }
    acceptors_.push_back(std::move(acc));
  }
}

std::vector<asio::ip::tcp::endpoint> server::local_endpoints() const {
  std::vector<tcp::endpoint> out;
  for (const auto& a : acceptors_) out.push_back(a->local_endpoint());
  return out;
}

void server::start() {
  for (auto& a : acceptors_) asio::co_spawn(io_, accept_loop(*a), asio::detached);
}

void server::stop() {
  std::vector<std::shared_ptr<smtp_session>> live;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (auto& [p, weak] : sessions_)
      if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto& a : acceptors_) {
    boost::system::error_code ec;
    a->close(ec);
  }
  for (auto& s : live) asio::post(s->executor(), [s] { s->shutdown(); });
}

std::size_t server::active_sessions() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

std::optional<std::string> server::admit(const std::string& ip, const std::string& network) {
  std::lock_guard lock(mutex_);
  if (stopped_) return "Service shutting down";
  const auto& l = config_.limits;
  auto held_by_ip = per_ip_.find(ip);
  auto held_by_network = per_network_.find(network);
  const std::size_t by_ip = held_by_ip == per_ip_.end() ? 0 : held_by_ip->second;
  const std::size_t by_network =
      held_by_network == per_network_.end() ? 0 : held_by_network->second;
  // The last slots are for clients that hold (almost) none: those holding many cannot take all.
  const std::size_t reserve = l.max_connections * reserved_share_percent / 100;
  const bool newcomer = by_network < reserve_holders_below;
  if (connections_ >= l.max_connections - (newcomer ? 0 : reserve))
    return "Too many connections, try again later";
  if (by_ip >= l.max_connections_per_ip) return "Too many connections from your address";
  if (by_network >= l.max_connections_per_network)
    return "Too many connections from your network (" + network + ")";
  // Counted only when admitted: a client refused for its rate is not counted again for it.
  const auto now = core::now_ms();
  const auto over_rate = [&](std::optional<core::rate_limiter>& rate, const std::string& key,
                             std::size_t most,
                             const std::string& whose) -> std::optional<std::string> {
    if (!rate) return std::nullopt;
    auto wait = rate->refuse(key, now);
    if (!wait) return std::nullopt;
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(*wait).count();
    return "Too many connections from your " + whose + " (more than " + std::to_string(most) +
           " a minute), try again in " + std::to_string(seconds) + " s";
  };
  if (auto refusal = over_rate(rate_by_ip_, ip, l.max_connection_rate_per_ip, "address"))
    return refusal;
  if (auto refusal = over_rate(rate_by_network_, network, l.max_connection_rate_per_network,
                               "network (" + network + ")"))
    return refusal;
  ++per_ip_[ip];
  ++per_network_[network];
  ++connections_;
  update_stress();
  return std::nullopt;
}

void server::update_stress() {
  const bool stressed = connections_ * 100 >= config_.limits.max_connections * stress_share_percent;
  if (stressed != under_stress_.exchange(stressed))
    core::log_warn(stressed ? "smtp: under stress (" + std::to_string(connections_) +
                                  " connections): commands must come within " +
                                  std::to_string(stress_idle_timeout.count()) +
                                  " s, fewer junk commands and errors are borne"
                            : "smtp: no longer under stress (" + std::to_string(connections_) +
                                  " connections)");
}

void server::release(const std::string& ip, const std::string& network, smtp_session* session) {
  std::lock_guard lock(mutex_);
  --connections_;
  if (--per_ip_[ip] == 0) per_ip_.erase(ip);
  if (--per_network_[network] == 0) per_network_.erase(network);
  sessions_.erase(session);
  update_stress();
}

asio::awaitable<void> server::refuse(tcp::socket socket, std::string reason) {
  core::session_record record;
  record.id = core::random_id();
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  record.connection.client_ip = remote.address().to_string();
  record.connection.client_port = remote.port();
  record.connection.started_at = core::now_ms();
  record.outcome = "refused";
  const std::string text = "421 4.7.0 " + config_.hostname + " " + reason + "\r\n";
  record.transcript.push_back({0, core::direction::server, text.substr(0, text.size() - 2)});
  // Shared with the timer's handler, which may run after this coroutine has finished.
  auto shared = std::make_shared<tcp::socket>(std::move(socket));
  asio::steady_timer timer(shared->get_executor(), refuse_write_timeout);
  timer.async_wait([shared](boost::system::error_code e) {
    if (!e) shared->close(e);
  });
  co_await asio::async_write(*shared, asio::buffer(text), asio::as_tuple(asio::use_awaitable));
  timer.cancel();
  shared->close(ec);
  record.ended_at = core::now_ms();
  core::log_info("session " + record.id + " " + record.connection.client_ip +
                 " refused: " + reason);
  sink_.session_closed(std::move(record));
}

asio::awaitable<void> server::accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] =
        co_await acceptor.async_accept(asio::make_strand(io_), asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      core::log_warn("accept failed: " + ec.message());
      asio::steady_timer wait(io_, accept_backoff);
      co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    boost::system::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    auto remote = socket.remote_endpoint(opt_ec);
    if (opt_ec) continue;  // the peer is already gone
    auto addr = remote.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    auto ip = addr.to_string();
    auto network = network_of(addr);
    if (auto refusal = admit(ip, network)) {
      auto ex = socket.get_executor();
      asio::co_spawn(ex, refuse(std::move(socket), std::move(*refusal)), asio::detached);
      continue;
    }
    auto session = std::make_shared<smtp_session>(std::move(socket), config_, tls_, sink_);
    {
      std::lock_guard lock(mutex_);
      sessions_[session.get()] = session;
    }
    auto* raw = session.get();
    asio::co_spawn(session->executor(), session->run(),
                   [this, ip, network, raw, session](const std::exception_ptr&) {
                     release(ip, network, raw);
                   });
  }
}

}  // namespace mxlens::receiver
