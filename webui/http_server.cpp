#include "webui/http_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <optional>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/rate_limit.hpp"
#include "core/report.hpp"
#include "core/text.hpp"
#include "webui/route.hpp"

namespace mxlens::webui {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
// A comment this often keeps proxies from closing an idle event stream.
constexpr auto event_keepalive = std::chrono::seconds(15);
// Most events read from the store at once.
constexpr std::size_t events_per_read = 100;
// What makes a request's framing ambiguous, so that a proxy in front could read another body
// than this server: RFC 9112 §6.1 (chunked must be the final coding, and is the only one this
// server decodes) and §6.3 (Transfer-Encoding with Content-Length; several Content-Lengths).
// Such a request gets 400 and the connection closes (§6.3: "MUST ... close the connection").
std::optional<std::string> framing_problem(const http::request_header<>& h) {
  const auto encodings = h.equal_range(http::field::transfer_encoding);
  const auto lengths = h.equal_range(http::field::content_length);
  const auto count = [](auto range) { return std::distance(range.first, range.second); };
  if (count(encodings) > 0) {
    if (count(encodings) > 1 || !beast::iequals(encodings.first->value(), "chunked"))
      return "Transfer-Encoding must be chunked alone (RFC 9112 §6.1)";
    if (count(lengths) > 0) return "Transfer-Encoding and Content-Length together (RFC 9112 §6.3)";
  }
  if (count(lengths) > 1) return "more than one Content-Length (RFC 9112 §6.3)";
  return std::nullopt;
}

// Refusals written at once, and how long each may take; past that, a refused connection is
// closed without a word.
constexpr std::size_t max_refusing = 64;
constexpr auto refuse_write_timeout = std::chrono::seconds(2);

// Octets of a raw message read from the store and written at once.
constexpr std::size_t raw_part_size = std::size_t{1} << 20;

// Completes when the client hangs up: its side of the connection is readable with nothing to
// read (it closed or reset it). Reads nothing: a request the client sent ahead (RFC 9112 §9.3.2)
// stays for the next read, and then this waits until it is cancelled.
asio::awaitable<void> hangup(tcp::socket& socket) {
  boost::system::error_code ec;
  co_await socket.async_wait(tcp::socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;  // cancelled, or the connection failed
  boost::system::error_code probe;
  if (socket.available(probe) == 0 || probe) co_return;
  asio::steady_timer until_cancelled(socket.get_executor(),
                                     std::chrono::steady_clock::time_point::max());
  co_await until_cancelled.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// Runs `work` (a long poll, an event stream) while a wait is kept pending on the client's side
// of the connection, so that a client who leaves frees its slot at once, not at the wait's end.
// True if `work` finished; false if the client hung up first, and `work` was cancelled.
asio::awaitable<bool> while_connected(tcp::socket& socket, asio::awaitable<void> work) {
  auto executor = co_await asio::this_coro::executor;
  auto group = asio::experimental::make_parallel_group(
      asio::co_spawn(executor, std::move(work), asio::deferred),
      asio::co_spawn(executor, hangup(socket), asio::deferred));
  auto outcome = co_await group.async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  const auto& order = std::get<0>(outcome);
  if (order[0] != 0) co_return false;
  if (const auto& failed = std::get<1>(outcome)) std::rethrow_exception(failed);
  co_return true;
}
}  // namespace

class http_server::impl : public std::enable_shared_from_this<http_server::impl> {
 public:
  impl(asio::io_context& io, http_settings s, asio::thread_pool& blocking, storage::store& reader,
       storage::commit_queue& queue, hub& events, metrics& counters, const core::clock& clock,
       std::atomic<std::size_t>& active)
      : io_(io),
        service_(std::move(s), blocking, reader, queue, events, counters, clock),
        metrics_(counters),
        active_(active) {}

  void start() {
    for (const auto& ep : settings().listen) {
      auto acceptor = std::make_shared<tcp::acceptor>(io_);
      acceptor->open(ep.protocol());
      acceptor->set_option(tcp::acceptor::reuse_address(true));
      if (ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true));
      acceptor->bind(ep);
      acceptor->listen();
      acceptors_.push_back(acceptor);
      asio::co_spawn(io_, accept(acceptor), asio::detached);
    }
  }

  void stop() {
    service_.stop();
    for (auto& a : acceptors_) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    // Connections waiting for their next request are closed; those in a request finish it.
    std::lock_guard lock(connections_mutex_);
    for (auto& [stream, idle] : connections_) {
      if (!*idle) continue;
      auto s = stream;
      asio::post(s->get_executor(), [s] {
        boost::system::error_code ignored;
        s->socket().cancel(ignored);
      });
    }
  }

  void public_url(std::string url) { service_.set_public_url(std::move(url)); }

  std::vector<tcp::endpoint> endpoints() const {
    std::vector<tcp::endpoint> out;
    for (const auto& a : acceptors_) {
      boost::system::error_code ec;
      auto ep = a->local_endpoint(ec);
      if (!ec) out.push_back(ep);
    }
    return out;
  }

 private:
  asio::awaitable<void> accept(std::shared_ptr<tcp::acceptor> acceptor) {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor->async_accept(asio::make_strand(io_),
                                                    asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (service_.stopping() || ec == asio::error::operation_aborted) co_return;
        continue;
      }
      boost::system::error_code no_peer;
      const auto peer = socket.remote_endpoint(no_peer);
      if (no_peer) continue;  // gone already
      // A response's head and body go out in separate writes (a download, an event stream):
      // without this, the body waits for the client's delayed ACK of the head, ~40 ms each.
      socket.set_option(tcp::no_delay(true), no_peer);
      auto client = peer.address().to_string();
      auto network = core::client_network(client);
      auto self = shared_from_this();
      auto executor = socket.get_executor();
      if (auto refusal = admit(network)) {
        // Told why, briefly; past a bound on refusals being written, closed without a word.
        if (refusing_ < max_refusing) {
          auto refuse = self->refuse(std::move(socket), std::move(*refusal));
          asio::co_spawn(executor, std::move(refuse), asio::detached);
        }
        continue;
      }
      auto session = self->serve(std::move(socket), std::move(client), std::move(network));
      asio::co_spawn(executor, std::move(session), asio::detached);
    }
  }

  // Counts a connection of `network` in, before it is served (so that a burst cannot overshoot
  // the limits), or says why it is refused. The last tenth of the slots is for clients holding
  // fewer than two: whoever holds the others cannot lock a newcomer out.
  std::optional<std::string> admit(const std::string& network) {
    const auto& s = settings();
    std::lock_guard lock(clients_mutex_);
    auto& held = per_client_[network];
    const bool newcomer = held < 2;
    const std::size_t reserve = s.max_connections / 10;
    std::optional<std::string> refusal;
    if (active_ >= s.max_connections - (newcomer ? 0 : reserve))
      refusal = "the server has no connection free";
    else if (held >= s.max_connections_per_client)
      refusal = "at most " + std::to_string(s.max_connections_per_client) +
                " connections at once from one address";
    if (refusal) {
      if (held == 0) per_client_.erase(network);
      return refusal;
    }
    ++held;
    ++active_;
    return std::nullopt;
  }

  void release(const std::string& network) {
    std::lock_guard lock(clients_mutex_);
    --active_;
    if (auto it = per_client_.find(network); it != per_client_.end() && --it->second == 0)
      per_client_.erase(it);
  }

  // 503 with a JSON body and Retry-After (RFC 9110 §15.6.4), within a short write deadline.
  asio::awaitable<void> refuse(tcp::socket socket, std::string why) {
    ++refusing_;
    struct guard {
      std::atomic<std::size_t>& n;
      ~guard() { --n; }
    } g{refusing_};
    beast::tcp_stream stream(std::move(socket));
    auto res = error_response(11, false, http::status::service_unavailable, "busy",
                              why + "; try again later");
    res.set(http::field::retry_after, "5");
    stream.expires_after(refuse_write_timeout);
    co_await send(stream, res);
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  asio::awaitable<void> serve(tcp::socket socket, std::string client, std::string network) {
    struct guard {
      impl& self;
      std::string network;
      ~guard() { self.release(network); }
    } g{*this, network};
    auto shared_stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    auto idle = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(connections_mutex_);
      connections_.emplace(shared_stream, idle);
    }
    struct registration {
      impl& self;
      std::shared_ptr<beast::tcp_stream> stream;
      ~registration() {
        std::lock_guard lock(self.connections_mutex_);
        self.connections_.erase(stream);
      }
    } reg{*this, shared_stream};
    beast::tcp_stream& stream = *shared_stream;
    beast::flat_buffer buffer;
    const auto& limits = settings();
    for (;;) {
      if (service_.stopping()) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header));
      parser.body_limit(limits.max_body);
      stream.expires_after(limits.request_timeout);
      boost::system::error_code ec;
      *idle = true;
      co_await http::async_read_header(stream, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      *idle = false;
      if (!ec) {
        if (auto problem = framing_problem(parser.get())) {
          auto res = error_response(parser.get().version(), false, http::status::bad_request,
                                    "bad_framing", *problem);
          co_await send(stream, res);
          break;
        }
        co_await http::async_read(stream, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) {
        std::optional<response> refusal;
        if (ec == http::error::header_limit)
          refusal = error_response(11, false, http::status::request_header_fields_too_large,
                                   "headers_too_large", "request headers over the limit");
        else if (ec == http::error::body_limit)
          refusal =
              error_response(11, false, http::status::payload_too_large, "body_too_large",
                             "request body over " + std::to_string(limits.max_body) + " octets");
        else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                 ec != asio::error::eof && ec != asio::error::connection_reset &&
                 ec != asio::error::operation_aborted)
          refusal = error_response(11, false, http::status::bad_request, "bad_request",
                                   "the request is not valid HTTP/1.1");
        if (refusal) co_await send(stream, *refusal);
        break;
      }
      request req = parser.release();
      if (static_cast<std::size_t>(std::distance(req.begin(), req.end())) >
          limits.max_header_fields) {
        auto res = error_response(
            req.version(), false, http::status::request_header_fields_too_large, "too_many_headers",
            "more than " + std::to_string(limits.max_header_fields) + " header fields");
        co_await send(stream, res);
        break;
      }
      std::optional<routed> answer;
      if (is_long_poll(req)) {
        auto work = route_into(req, client, answer);
        const bool finished = co_await while_connected(stream.socket(), std::move(work));
        if (!finished) break;
      } else {
        auto routed_now = co_await route(service_, req, client);
        answer.emplace(std::move(routed_now));
      }
      if (auto* stream_of = std::get_if<event_stream>(&*answer)) {
        auto slot = service_.take_wait(client);
        if (!slot) {
          auto res = error_response(req.version(), false, http::status::service_unavailable,
                                    "too_many_waits", service_.too_many_waits());
          res.set(http::field::retry_after, "5");
          co_await send(stream, res);
          break;
        }
        auto work = events(stream, req, *stream_of);
        co_await while_connected(stream.socket(), std::move(work));
        break;
      }
      if (auto* download = std::get_if<raw_download>(&*answer)) {
        if (service_.stopping()) download->head.keep_alive(false);
        const bool go_on = co_await send_raw(stream, *download);
        if (!go_on) break;
        continue;
      }
      auto& res = std::get<response>(*answer);
      if (service_.stopping()) res.keep_alive(false);
      stream.expires_after(limits.request_timeout);
      const bool sent = co_await send(stream, res);
      if (!sent || !res.keep_alive()) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  const http_settings& settings() const { return service_.settings(); }

  // route(), its answer put in `out` (which outlives the awaitable).
  asio::awaitable<void> route_into(const request& req, std::string client,
                                   std::optional<routed>& out) {
    auto answer = co_await route(service_, req, std::move(client));
    out.emplace(std::move(answer));
  }

  // Writes one response and counts it; false if the connection failed.
  asio::awaitable<bool> send(beast::tcp_stream& stream, response& res) {
    metrics_.http_response(res.result_int());
    boost::system::error_code ec;
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  // A raw message: its head, then its octets a part at a time as the store reads them, so that
  // a download costs one part of memory whatever the message's size. True if the connection
  // goes on: all was written and the client keeps it alive. A delivery deleted meanwhile ends
  // the connection short of the Content-Length.
  asio::awaitable<bool> send_raw(beast::tcp_stream& stream, raw_download& d) {
    http::response<http::empty_body> head{std::move(d.head.base())};
    metrics_.http_response(head.result_int());
    http::response_serializer<http::empty_body> sr{head};
    boost::system::error_code ec;
    stream.expires_after(settings().request_timeout);
    co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
    for (std::uint64_t at = 0; !ec && at < d.size;) {
      std::optional<std::string> part;
      try {
        part = co_await service_.raw_part(d.test_id, d.number, at, raw_part_size);
      } catch (const std::exception& e) {
        core::log_warn("http: reading delivery " + d.test_id + "/" + std::to_string(d.number) +
                       " for a download: " + e.what());
      }
      if (!part || part->empty()) co_return false;
      stream.expires_after(settings().request_timeout);
      co_await asio::async_write(stream, asio::buffer(*part),
                                 asio::redirect_error(asio::use_awaitable, ec));
      at += part->size();
    }
    co_return !ec && head.keep_alive();
  }

  // Server-sent events: a "delivery" event (id = its number, data = its listing line) for each
  // report from `after` on, built from the stored listing lines; a comment every 15 s.
  asio::awaitable<void> events(beast::tcp_stream& stream, const request& req, event_stream es) {
    boost::system::error_code ec;
    http::response<http::empty_body> head{http::status::ok, req.version()};
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-store");
    head.set("X-Content-Type-Options", "nosniff");
    head.keep_alive(false);  // the stream ends with the connection
    metrics_.http_response(200);
    http::response_serializer<http::empty_body> sr{head};
    stream.expires_after(settings().request_timeout);
    co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    std::string out = "retry: 2000\n\n";
    while (!service_.stopping()) {
      const auto seen = service_.generation(es.test_id);
      std::vector<core::report_line> fresh;
      try {
        fresh = co_await service_.lines_after(es.test_id, es.after, events_per_read);
      } catch (const std::exception&) {
        break;
      }
      for (const auto& line : fresh) {
        es.after = line.number;
        out += "id: " + std::to_string(line.number) +
               "\nevent: delivery\ndata: " + core::printable_json(core::to_json(line)) + "\n\n";
      }
      if (out.empty()) out = ": keep-alive\n\n";
      // Each write has the request deadline: a client that stops reading is let go.
      stream.expires_after(settings().request_timeout);
      co_await asio::async_write(stream, asio::buffer(out),
                                 asio::redirect_error(asio::use_awaitable, ec));
      out.clear();
      if (ec) break;
      stream.expires_never();
      if (fresh.size() == events_per_read) continue;
      co_await service_.sleep_until_news(es.test_id, seen,
                                         std::chrono::steady_clock::now() + event_keepalive);
    }
  }

  asio::io_context& io_;
  api service_;
  metrics& metrics_;
  std::atomic<std::size_t>& active_;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  std::mutex connections_mutex_;
  std::mutex clients_mutex_;
  std::map<std::string, std::size_t> per_client_;  // connections by client network
  std::atomic<std::size_t> refusing_{0};           // 503s being written
  std::map<std::shared_ptr<beast::tcp_stream>, std::shared_ptr<std::atomic<bool>>> connections_;
};

http_server::http_server(asio::io_context& io, http_settings settings, asio::thread_pool& blocking,
                         storage::store& reader, storage::commit_queue& queue, hub& events,
                         metrics& counters, const core::clock& clock)
    : impl_(std::make_shared<impl>(io, std::move(settings), blocking, reader, queue, events,
                                   counters, clock, active_)) {}

void http_server::start() { impl_->start(); }
void http_server::stop() { impl_->stop(); }
std::vector<tcp::endpoint> http_server::local_endpoints() const { return impl_->endpoints(); }
void http_server::set_public_url(std::string url) { impl_->public_url(std::move(url)); }

}  // namespace mxlens::webui
