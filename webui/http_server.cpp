#include "webui/http_server.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "storage/blocking.hpp"
#include "webui/assets.hpp"

namespace mxlens::webui {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace urls = boost::urls;
using tcp = asio::ip::tcp;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

namespace {

constexpr std::int64_t ms_per_day = 86'400'000;
constexpr auto event_keepalive = std::chrono::seconds(15);

// Thrown by a handler to answer with an error body.
struct http_error {
  http::status status;
  std::string code;
  std::string message;
};

constexpr const char* page_policy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

void secure_headers(response& res) {
  res.set(http::field::server, "mxlens");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Content-Security-Policy", page_policy);
  res.set("Referrer-Policy", "no-referrer");
  res.set(http::field::cache_control, "no-store");
}

response json_response(const request& req, http::status status, const json::value& body) {
  response res{status, req.version()};
  res.set(http::field::content_type, "application/json");
  secure_headers(res);
  res.body() = json::serialize(body);
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

response error_response(const request& req, const http_error& e) {
  auto res = json_response(
      req, e.status,
      json::object{{"error", json::object{{"code", e.code}, {"message", e.message}}}});
  if (e.status == http::status::method_not_allowed)
    res.set(http::field::allow, e.message.substr(e.message.rfind(' ') + 1));
  return res;
}

// The request target in origin form (RFC 9112 §3.2.1: an absolute path and an optional query),
// read by Boost.URL: the path's segments percent-decoded (RFC 3986 §2.1), empty ones skipped, so
// that "/api//v1/" is "/api/v1". nullopt for a target that is not in origin form.
std::optional<std::vector<std::string>> split_path(std::string_view target) {
  auto url = urls::parse_origin_form(target);
  if (!url) return std::nullopt;
  std::vector<std::string> parts;
  for (auto segment : url->segments())
    if (!segment.empty()) parts.push_back(std::move(segment));
  return parts;
}

// The query's parameters, percent-decoded; a parameter given twice keeps its last value, one
// without "=" has the empty value. Only called on targets split_path accepted.
std::map<std::string, std::string> query_of(std::string_view target) {
  std::map<std::string, std::string> out;
  auto url = urls::parse_origin_form(target);
  if (!url) return out;
  for (auto param : url->params()) out[std::move(param.key)] = std::move(param.value);
  return out;
}

std::int64_t int_param(const std::map<std::string, std::string>& q, const char* name,
                       std::int64_t def, std::int64_t lo, std::int64_t hi) {
  auto it = q.find(name);
  if (it == q.end()) return def;
  const auto& v = it->second;
  if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
    throw http_error{http::status::bad_request, "bad_parameter",
                     std::string(name) + " must be a whole number"};
  auto n = std::stoll(v);
  if (n < lo || n > hi)
    throw http_error{http::status::bad_request, "bad_parameter",
                     std::string(name) + " must be between " + std::to_string(lo) + " and " +
                         std::to_string(hi)};
  return n;
}

}  // namespace

json::array source_aggregates(const std::vector<storage::source_total>& rows) {
  struct totals {
    std::int64_t first = 0, deliveries = 0, tls = 0, spf = 0, dkim = 0, dmarc = 0, failed = 0;
    std::map<std::string, std::int64_t> versions, ciphers;
  };
  std::map<std::string, totals> by_ip;
  for (const auto& r : rows) {
    auto [it, fresh] = by_ip.try_emplace(r.client_ip);
    auto& t = it->second;
    t.first = fresh ? r.first_delivery : std::min(t.first, r.first_delivery);
    t.deliveries += r.deliveries;
    if (r.tls_version) {
      t.tls += r.deliveries;
      t.versions[*r.tls_version] += r.deliveries;
      t.ciphers[r.tls_cipher.value_or("")] += r.deliveries;
    }
    t.spf += r.spf_pass;
    t.dkim += r.dkim_pass;
    t.dmarc += r.dmarc_pass;
    t.failed += r.failed_handshakes;
  }
  // Sources in the order they first delivered.
  std::vector<std::string> order;
  order.reserve(by_ip.size());
  for (const auto& [ip, t] : by_ip) order.push_back(ip);
  std::sort(order.begin(), order.end(),
            [&](const auto& a, const auto& b) { return by_ip[a].first < by_ip[b].first; });
  json::array out;
  for (const auto& ip : order) {
    const auto& t = by_ip[ip];
    auto share = [&](std::int64_t n) {
      return t.deliveries ? static_cast<double>(n) / static_cast<double>(t.deliveries) : 0.0;
    };
    const double plaintext = 1.0 - share(t.tls);
    json::object versions, ciphers;
    for (const auto& [k, v] : t.versions) versions[k] = v;
    for (const auto& [k, v] : t.ciphers) ciphers[k] = v;
    out.push_back(json::object{{"client_ip", ip},
                               {"deliveries", t.deliveries},
                               {"tls_share", share(t.tls)},
                               {"plaintext_share", plaintext},
                               // Under 1% low, 1-5% watch, over 5% incident.
                               {"plaintext_level", plaintext < 0.01    ? "low"
                                                   : plaintext <= 0.05 ? "watch"
                                                                       : "incident"},
                               {"tls_versions", std::move(versions)},
                               {"ciphers", std::move(ciphers)},
                               {"spf_pass_share", share(t.spf)},
                               {"dkim_pass_share", share(t.dkim)},
                               {"dmarc_pass_share", share(t.dmarc)},
                               {"failed_handshakes", t.failed}});
  }
  return out;
}

class http_server::impl : public std::enable_shared_from_this<http_server::impl> {
 public:
  impl(asio::io_context& io, http_settings s, asio::thread_pool& blocking, storage::store& reader,
       storage::commit_queue& queue, hub& events, metrics& counters, const core::clock& clock,
       std::atomic<std::size_t>& active)
      : io_(io),
        settings_(std::move(s)),
        blocking_(blocking),
        reader_(reader),
        queue_(queue),
        hub_(events),
        metrics_(counters),
        clock_(clock),
        active_(active) {}

  void start() {
    for (const auto& ep : settings_.listen) {
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
    stopping_ = true;
    for (auto& a : acceptors_) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    hub_.notify_all();
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

  void public_url(std::string url) { settings_.public_url = std::move(url); }

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
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        continue;
      }
      if (active_ >= settings_.max_connections) {
        socket.close(ec);  // over the limit: refused without a word
        continue;
      }
      auto self = shared_from_this();
      auto executor = socket.get_executor();
      auto session = self->serve(std::move(socket));
      asio::co_spawn(executor, std::move(session), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    ++active_;
    struct guard {
      std::atomic<std::size_t>& n;
      ~guard() { --n; }
    } g{active_};
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
    for (;;) {
      if (stopping_) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(settings_.max_header));
      parser.body_limit(settings_.max_body);
      stream.expires_after(settings_.request_timeout);
      boost::system::error_code ec;
      *idle = true;
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      *idle = false;
      if (ec) {
        std::optional<http_error> e;
        if (ec == http::error::header_limit)
          e = http_error{http::status::request_header_fields_too_large, "headers_too_large",
                         "request headers over the limit"};
        else if (ec == http::error::body_limit)
          e = http_error{http::status::payload_too_large, "body_too_large",
                         "request body over " + std::to_string(settings_.max_body) + " octets"};
        else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                 ec != asio::error::eof && ec != asio::error::connection_reset &&
                 ec != asio::error::operation_aborted)
          e = http_error{http::status::bad_request, "bad_request",
                         "the request is not valid HTTP/1.1"};
        if (e) {
          request blank;
          blank.version(11);
          blank.keep_alive(false);
          auto res = error_response(blank, *e);
          res.keep_alive(false);
          metrics_.http_response(res.result_int());
          co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        }
        break;
      }
      request req = parser.release();
      if (static_cast<std::size_t>(std::distance(req.begin(), req.end())) >
          settings_.max_header_fields) {
        auto res = error_response(
            req, {http::status::request_header_fields_too_large, "too_many_headers",
                  "more than " + std::to_string(settings_.max_header_fields) + " header fields"});
        res.keep_alive(false);
        metrics_.http_response(res.result_int());
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        break;
      }
      const auto parts = split_path(req.target());
      if (parts && parts->size() == 5 && (*parts)[0] == "api" && (*parts)[1] == "v1" &&
          (*parts)[2] == "tests" && (*parts)[4] == "events" && req.method() == http::verb::get) {
        co_await events(stream, req, core::lowercase((*parts)[3]));
        break;
      }
      response res;
      try {
        if (!parts)
          throw http_error{http::status::bad_request, "bad_target",
                           "the request target is not a path with an optional query"};
        res = co_await route(req, *parts);
      } catch (const http_error& e) {
        res = error_response(req, e);
      } catch (const std::exception& e) {
        core::log_error(std::string("http: ") + e.what());
        res = error_response(req,
                             {http::status::internal_server_error, "internal", "internal error"});
      }
      if (stopping_) res.keep_alive(false);
      metrics_.http_response(res.result_int());
      stream.expires_after(settings_.request_timeout);
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Runs f(store) on the blocking pool, under the reader's mutex.
  template <class F>
  asio::awaitable<std::invoke_result_t<F, storage::store&>> read(F f) {
    auto work = [this, f = std::move(f)]() mutable {
      std::lock_guard lock(reader_mutex_);
      return f(reader_);
    };
    auto result = co_await storage::run_blocking(blocking_, std::move(work));
    co_return result;
  }

  // Runs f(store) on the writer thread, between commits.
  template <class F>
  asio::awaitable<std::invoke_result_t<F, storage::store&>> write(F f) {
    using result = std::invoke_result_t<F, storage::store&>;
    auto initiation = [this](auto handler, F work) {
      auto shared = std::make_shared<decltype(handler)>(std::move(handler));
      queue_.run([shared, work = std::move(work)](storage::store& s) mutable {
        std::exception_ptr error;
        result value{};
        try {
          value = work(s);
        } catch (...) {
          error = std::current_exception();
        }
        auto ex = asio::get_associated_executor(*shared);
        asio::post(ex, [shared, error, value = std::move(value)]() mutable {
          (*shared)(error, std::move(value));
        });
      });
    };
    auto value = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                               void(std::exception_ptr, result)>(
        initiation, asio::use_awaitable, std::move(f));
    co_return value;
  }

  asio::awaitable<core::test_info> existing_test(const std::string& id) {
    if (!core::is_valid_test_id(id))
      throw http_error{http::status::not_found, "not_found", "no such test"};
    auto find = [id](storage::store& s) { return s.find_test(id); };
    auto test = co_await read(std::move(find));
    if (!test || test->expires_at <= clock_.now())
      throw http_error{http::status::not_found, "not_found", "no such test"};
    co_return *test;
  }

  // The reports of a test numbered above `after` whose analysis is stored.
  asio::awaitable<std::vector<json::object>> reports(const std::string& id, std::int64_t after,
                                                     std::size_t limit) {
    auto list = [id, after, limit](storage::store& s) {
      return s.delivery_records(id, after, limit);
    };
    auto rows = co_await read(std::move(list));
    std::vector<json::object> out;
    for (auto& row : rows) {
      if (!row.analysis_json) break;  // not yet analyzed: it and what follows come later
      out.push_back(
          core::merge_report(row.facts_json, json::parse(*row.analysis_json).as_object()));
    }
    co_return out;
  }

  json::object test_json(const core::test_info& t) {
    auto o = core::to_json(t).as_object();
    o["url"] = settings_.public_url + "/t/" + t.id;
    return o;
  }

  static void require_method(const request& req, http::verb v, const char* allow) {
    if (req.method() != v)
      throw http_error{http::status::method_not_allowed, "method_not_allowed",
                       std::string("allowed: ") + allow};
  }

  // The pages: three HTML files and their scripts and styles, from the embedded set only (a name
  // outside it is a 404, so no path reaches anything else).
  response asset(const request& req, const std::string& name) {
    const auto& all = embedded_assets();
    auto it =
        std::find_if(all.begin(), all.end(), [&](const webui::asset& a) { return a.name == name; });
    if (it == all.end()) throw http_error{http::status::not_found, "not_found", "no such resource"};
    std::string bytes(it->bytes);
    if (!settings_.static_dir.empty()) {
      std::ifstream in(settings_.static_dir + "/" + name, std::ios::binary);
      if (in) bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    response res{http::status::ok, req.version()};
    const auto dot = name.rfind('.');
    const auto ext = dot == std::string::npos ? "" : name.substr(dot + 1);
    res.set(http::field::content_type, ext == "html"  ? "text/html; charset=utf-8"
                                       : ext == "css" ? "text/css; charset=utf-8"
                                                      : "text/javascript; charset=utf-8");
    secure_headers(res);
    res.set(http::field::cache_control, "no-cache");
    res.body() = std::move(bytes);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
  }

  asio::awaitable<response> route(const request& req, const std::vector<std::string>& p) {
    if (p.empty() || p[0] == "t" || p[0] == "static") {
      require_method(req, http::verb::get, "GET");
      if (p.empty()) co_return asset(req, "index.html");
      if (p[0] == "static" && p.size() == 2) co_return asset(req, p[1]);
      if (p[0] == "t" && p.size() == 2) co_return asset(req, "test.html");
      if (p[0] == "t" && p.size() == 4 && p[2] == "d") co_return asset(req, "report.html");
      throw http_error{http::status::not_found, "not_found", "no such page"};
    }
    if (p.size() == 1 && p[0] == "healthz") {
      require_method(req, http::verb::get, "GET");
      co_return json_response(req, http::status::ok,
                              json::object{{"status", stopping_ ? "stopping" : "ok"}});
    }
    if (p.size() == 1 && p[0] == "metrics") {
      require_method(req, http::verb::get, "GET");
      response res{http::status::ok, req.version()};
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      secure_headers(res);
      res.body() = metrics_.render() + render(queue_.timing());
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      co_return res;
    }
    if (p.size() < 3 || p[0] != "api" || p[1] != "v1" || p[2] != "tests")
      throw http_error{http::status::not_found, "not_found", "no such resource"};
    if (p.size() == 3) {
      require_method(req, http::verb::post, "POST");
      co_return co_await create(req);
    }
    const std::string id = core::lowercase(p[3]);
    if (p.size() == 4) {
      if (req.method() == http::verb::delete_) co_return co_await remove(req, id);
      require_method(req, http::verb::get, "GET,DELETE");
      co_return co_await show(req, id);
    }
    if (p.size() == 5 && p[4] == "wait") {
      require_method(req, http::verb::get, "GET");
      co_return co_await wait(req, id);
    }
    if ((p.size() == 6 || p.size() == 7) && p[4] == "deliveries") {
      require_method(req, http::verb::get, "GET");
      const auto& n = p[5];
      if (n.empty() || n.size() > 12 || n.find_first_not_of("0123456789") != std::string::npos)
        throw http_error{http::status::not_found, "not_found", "no such delivery"};
      const auto number = std::stoll(n);
      if (p.size() == 7 && p[6] == "raw") co_return co_await raw(req, id, number);
      if (p.size() == 6) co_return co_await one(req, id, number);
    }
    throw http_error{http::status::not_found, "not_found", "no such resource"};
  }

  asio::awaitable<response> create(const request& req) {
    json::object body;
    if (!req.body().empty()) {
      boost::system::error_code ec;
      auto v = json::parse(req.body(), ec);
      if (ec || !v.is_object())
        throw http_error{http::status::bad_request, "bad_json", "the body must be a JSON object"};
      body = v.as_object();
    }
    core::test_info t;
    t.id = core::new_test_id();
    t.address = t.id + "@" + settings_.domain;
    t.created_at = clock_.now();
    t.expires_at = t.created_at + settings_.retention_days * ms_per_day;
    for (const auto& [k, v] : body) {
      if (k == "label") {
        if (!v.is_string() || v.as_string().size() > 200)
          throw http_error{http::status::bad_request, "bad_field",
                           "label must be a string of at most 200 characters"};
        t.label = std::string(v.as_string());
      } else if (k == "bulk") {
        if (!v.is_bool())
          throw http_error{http::status::bad_request, "bad_field", "bulk must be true or false"};
        t.bulk = v.as_bool();
      } else if (k == "profile") {
        if (!v.is_string() || v.as_string() != "accept")
          throw http_error{http::status::bad_request, "bad_field",
                           "profile: only \"accept\" is available"};
      } else {
        throw http_error{http::status::bad_request, "unknown_field",
                         "unknown field '" + std::string(k) + "'"};
      }
    }
    auto insert = [t](storage::store& s) { return s.create_test(t); };
    if (!co_await write(std::move(insert)))
      throw http_error{http::status::internal_server_error, "internal",
                       "test id collision, try again"};
    auto res = json_response(req, http::status::created, test_json(t));
    res.set(http::field::location, "/api/v1/tests/" + t.id);
    co_return res;
  }

  // The test, a page of its listing (?order=asc|desc, ?after=N or ?before=N, ?limit=1..1000) and
  // its per-source totals; read from the lines and totals stored with each report, so that a test
  // with many deliveries answers as fast as one with a few.
  asio::awaitable<response> show(const request& req, const std::string& id) {
    auto q = query_of(req.target());
    storage::line_page page;
    if (auto order = q.find("order"); order != q.end()) {
      if (order->second != "asc" && order->second != "desc")
        throw http_error{http::status::bad_request, "bad_parameter", "order must be asc or desc"};
      page.descending = order->second == "desc";
    }
    page.after = int_param(q, "after", 0, 0, 1'000'000'000'000);
    if (q.count("before")) page.before = int_param(q, "before", 0, 0, 1'000'000'000'000);
    if (page.before && !page.descending)
      throw http_error{http::status::bad_request, "bad_parameter", "before goes with order=desc"};
    if (q.count("after") && page.descending)
      throw http_error{http::status::bad_request, "bad_parameter", "after goes with order=asc"};
    page.limit = static_cast<std::size_t>(int_param(q, "limit", 500, 1, 1000));
    auto t = co_await existing_test(id);
    auto read_page = [id, page](storage::store& s) {
      auto more = page;
      ++more.limit;  // one past the page says whether there is more
      return std::make_pair(s.report_lines(id, more), s.source_totals(id));
    };
    auto [lines, totals] = co_await read(std::move(read_page));
    auto o = test_json(t);
    std::int64_t count = 0;
    for (const auto& r : totals) count += r.deliveries;
    o["delivery_count"] = count;
    o["more"] = lines.size() > page.limit;
    if (lines.size() > page.limit) lines.pop_back();
    json::array out;
    out.reserve(lines.size());
    for (const auto& l : lines) out.push_back(core::to_json(l));
    o["deliveries"] = std::move(out);
    o["sources"] = source_aggregates(totals);
    co_return json_response(req, http::status::ok, o);
  }

  asio::awaitable<response> one(const request& req, const std::string& id, std::int64_t n) {
    co_await existing_test(id);
    auto found = co_await reports(id, n - 1, 1);
    if (found.empty() || found.front().at("delivery").to_number<std::int64_t>() != n)
      throw http_error{http::status::not_found, "not_found",
                       "no such delivery (or its report is not ready)"};
    co_return json_response(req, http::status::ok, found.front());
  }

  asio::awaitable<response> raw(const request& req, const std::string& id, std::int64_t n) {
    co_await existing_test(id);
    auto get = [id, n](storage::store& s) { return s.delivery(id, n); };
    auto d = co_await read(std::move(get));
    if (!d) throw http_error{http::status::not_found, "not_found", "no such delivery"};
    response res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::content_disposition,
            "attachment; filename=\"" + id + "-" + std::to_string(n) + ".eml\"");
    secure_headers(res);
    res.body() = std::move(d->raw);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    co_return res;
  }

  asio::awaitable<response> remove(const request& req, const std::string& id) {
    co_await existing_test(id);
    auto del = [id](storage::store& s) { return s.delete_test(id); };
    if (!co_await write(std::move(del)))
      throw http_error{http::status::not_found, "not_found", "no such test"};
    hub_.notify(id);
    response res{http::status::no_content, req.version()};
    secure_headers(res);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    co_return res;
  }

  // Sleeps until the hub says the test moved, or the deadline; false at the deadline or on stop.
  asio::awaitable<bool> sleep_until_news(const std::string& id, std::uint64_t seen,
                                         std::chrono::steady_clock::time_point deadline) {
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    timer->expires_at(deadline);
    hub_.subscribe(id, timer);
    bool news = hub_.generation(id) != seen;
    if (!news && !stopping_) {
      boost::system::error_code ec;
      co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      news = ec == asio::error::operation_aborted;
    }
    hub_.unsubscribe(id, timer);
    co_return news && !stopping_;
  }

  asio::awaitable<response> wait(const request& req, const std::string& id) {
    auto q = query_of(req.target());
    const auto after = int_param(q, "after", 0, 0, 1'000'000'000'000);
    const auto timeout = int_param(q, "timeout", 30, 0, settings_.max_wait.count());
    co_await existing_test(id);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
    for (;;) {
      const auto seen = hub_.generation(id);
      auto found = co_await reports(id, after, 1);
      if (!found.empty()) co_return json_response(req, http::status::ok, found.front());
      if (!co_await sleep_until_news(id, seen, deadline)) {
        if (std::chrono::steady_clock::now() >= deadline || stopping_) break;
      }
    }
    response res{http::status::no_content, req.version()};
    secure_headers(res);
    res.keep_alive(req.keep_alive() && !stopping_);
    res.prepare_payload();
    co_return res;
  }

  // Server-sent events: a "delivery" event (id = its number) for each report, from ?after=N or
  // Last-Event-ID on; a comment every 15 s keeps proxies from closing the stream.
  asio::awaitable<void> events(beast::tcp_stream& stream, const request& req, std::string id) {
    boost::system::error_code ec;
    std::int64_t after = 0;
    std::optional<http_error> failure;
    try {
      co_await existing_test(id);
      auto q = query_of(req.target());
      after = int_param(q, "after", 0, 0, 1'000'000'000'000);
      if (auto last = req.find("Last-Event-ID"); last != req.end()) {
        std::map<std::string, std::string> h{{"after", std::string(last->value())}};
        after = int_param(h, "after", after, 0, 1'000'000'000'000);
      }
    } catch (const http_error& e) {
      failure = e;
    }
    if (failure) {
      auto res = error_response(req, *failure);
      res.keep_alive(false);
      metrics_.http_response(res.result_int());
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    http::response<http::empty_body> head{http::status::ok, req.version()};
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-store");
    head.set("X-Content-Type-Options", "nosniff");
    head.keep_alive(false);  // the stream ends with the connection
    metrics_.http_response(200);
    http::response_serializer<http::empty_body> sr{head};
    stream.expires_never();
    co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    std::string out = "retry: 2000\n\n";
    while (!stopping_) {
      const auto seen = hub_.generation(id);
      std::vector<json::object> fresh;
      try {
        fresh = co_await reports(id, after, 100);
      } catch (const std::exception&) {
        break;
      }
      for (const auto& r : fresh) {
        after = r.at("delivery").to_number<std::int64_t>();
        auto line = core::line_of(r, r);  // a whole report holds both the facts and the analysis
        line.number = after;
        out += "id: " + std::to_string(after) +
               "\nevent: delivery\ndata: " + json::serialize(core::to_json(line)) + "\n\n";
      }
      if (out.empty()) out = ": keep-alive\n\n";
      co_await asio::async_write(stream.socket(), asio::buffer(out),
                                 asio::redirect_error(asio::use_awaitable, ec));
      out.clear();
      if (ec) break;
      if (fresh.size() == 100) continue;
      co_await sleep_until_news(id, seen, std::chrono::steady_clock::now() + event_keepalive);
    }
  }

  asio::io_context& io_;
  http_settings settings_;
  asio::thread_pool& blocking_;
  storage::store& reader_;
  std::mutex reader_mutex_;
  storage::commit_queue& queue_;
  hub& hub_;
  metrics& metrics_;
  const core::clock& clock_;
  std::atomic<std::size_t>& active_;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  std::atomic<bool> stopping_{false};
  std::mutex connections_mutex_;
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
