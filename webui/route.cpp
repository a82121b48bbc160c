#include "webui/route.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/prefix.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"
#include "webui/assets.hpp"

namespace mxlens::webui {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace urls = boost::urls;

namespace {

// Largest delivery number a parameter may name (far beyond any test's count).
constexpr std::int64_t max_number = 1'000'000'000'000;
// Most lines one page of a test's listing holds.
constexpr std::int64_t max_page = 1000;
// Longest label a test may carry.
constexpr std::size_t max_label = 200;

// Thrown by a handler to answer with an error body.
struct http_error {
  http::status status;
  std::string code;
  std::string message;
  std::optional<std::chrono::seconds> retry_after = {};  // RFC 9110 §10.2.3
};

constexpr const char* page_policy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// Every response is made here: the headers every response carries, the body sized, and the
// connection kept as the client asked (empty content_type: no body, no Content-Type).
response make_response(unsigned version, bool keep_alive, http::status status,
                       std::string_view content_type, std::string body) {
  response res{status, version};
  if (!content_type.empty()) res.set(http::field::content_type, content_type);
  secure_headers(res);
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

response make_response(const request& req, http::status status, std::string_view content_type,
                       std::string body) {
  return make_response(req.version(), req.keep_alive(), status, content_type, std::move(body));
}

response json_response(const request& req, http::status status, const json::value& body) {
  return make_response(req, status, "application/json", core::printable_json(body));
}

response empty_response(const request& req, http::status status) {
  return make_response(req, status, {}, {});
}

// The request target in origin form (RFC 9112 §3.2.1: an absolute path and an optional query),
// read by Boost.URL: path segments and parameters percent-decoded (RFC 3986 §2.1), empty segments
// skipped so that "/api//v1/" is "/api/v1"; a parameter given twice keeps its last value, one
// without "=" has the empty value.
struct target {
  std::vector<std::string> path;
  std::map<std::string, std::string> query;
};

target parse_target(std::string_view raw) {
  auto url = urls::parse_origin_form(raw);
  if (!url)
    throw http_error{http::status::bad_request, "bad_target",
                     "the request target is not a path with an optional query"};
  target t;
  for (auto segment : url->segments())
    if (!segment.empty()) t.path.push_back(std::move(segment));
  for (auto param : url->params()) t.query[std::move(param.key)] = std::move(param.value);
  return t;
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

void require_method(const request& req, http::verb v, const char* allow) {
  if (req.method() != v)
    throw http_error{http::status::method_not_allowed, "method_not_allowed",
                     std::string("allowed: ") + allow};
}

asio::awaitable<core::test_info> existing_test(api& service, const std::string& id) {
  auto test = co_await service.find_test(id);
  if (!test) throw http_error{http::status::not_found, "not_found", "no such test"};
  co_return *test;
}

// For handlers that need the test to exist but not the test itself. g++ 12 miscompiled a
// coroutine that discarded the test_info of `co_await existing_test(...)` and then awaited inside
// an `if` condition: the resumption reached a trap instruction (docs/libraries.md §5).
asio::awaitable<void> require_test(api& service, const std::string& id) {
  const auto test = co_await existing_test(service, id);
  (void)test;
}

// The pages: three HTML files and their scripts and styles, from the embedded set only (a name
// outside it is a 404, so no path reaches anything else).
response asset(const api& service, const request& req, const std::string& name) {
  const auto& all = embedded_assets();
  auto it =
      std::find_if(all.begin(), all.end(), [&](const webui::asset& a) { return a.name == name; });
  if (it == all.end()) throw http_error{http::status::not_found, "not_found", "no such resource"};
  std::string bytes(it->bytes);
  if (const auto& dir = service.settings().static_dir; !dir.empty()) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    if (in) bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto dot = name.rfind('.');
  const auto ext = dot == std::string::npos ? "" : name.substr(dot + 1);
  auto res = make_response(req, http::status::ok,
                           ext == "html"  ? "text/html; charset=utf-8"
                           : ext == "css" ? "text/css; charset=utf-8"
                                          : "text/javascript; charset=utf-8",
                           std::move(bytes));
  res.set(http::field::cache_control, "no-cache");
  return res;
}

// The media type of a Content-Type value, lowercase, without its parameters (RFC 9110 §8.3.1).
std::string media_type(std::string_view content_type) {
  auto type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return core::lowercase(std::string(type));
}

// POST /api/v1/tests, of type application/json, with an optional body {label, bulk, profile,
// expect_from}. The type is required even without a body: a page on another site can send a
// POST without a type, or of type text/plain, without asking this server first, while one of type
// application/json needs a CORS preflight (Fetch standard), which this server never grants.
asio::awaitable<response> create(api& service, const request& req, const std::string& client) {
  if (media_type(req[http::field::content_type]) != "application/json")
    throw http_error{http::status::unsupported_media_type, "unsupported_media_type",
                     "a test is created with Content-Type: application/json"};
  if (auto wait = service.refuse_creation(client)) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(*wait);
    throw http_error{http::status::too_many_requests, "too_many_tests",
                     "at most " + std::to_string(service.settings().max_new_tests_per_minute) +
                         " tests a minute are created for one address; try again in " +
                         std::to_string(seconds.count()) + " s",
                     seconds};
  }
  json::object body;
  if (!req.body().empty()) {
    boost::system::error_code ec;
    auto v = json::parse(req.body(), ec);
    if (ec || !v.is_object())
      throw http_error{http::status::bad_request, "bad_json", "the body must be a JSON object"};
    body = v.as_object();
  }
  std::string label;
  bool bulk = false;
  std::vector<std::string> expect_from;
  for (const auto& [k, v] : body) {
    if (k == "label") {
      if (!v.is_string() || v.as_string().size() > max_label)
        throw http_error{
            http::status::bad_request, "bad_field",
            "label must be a string of at most " + std::to_string(max_label) + " characters"};
      label = std::string(v.as_string());
    } else if (k == "bulk") {
      if (!v.is_bool())
        throw http_error{http::status::bad_request, "bad_field", "bulk must be true or false"};
      bulk = v.as_bool();
    } else if (k == "expect_from") {
      // A few narrow claims (core/prefix.hpp), so that no test watches a whole network.
      using core::most_claims;
      if (!v.is_array() || v.as_array().size() > most_claims)
        throw http_error{http::status::bad_request, "bad_field",
                         "expect_from must be an array of at most " + std::to_string(most_claims) +
                             " addresses or prefixes"};
      for (const auto& e : v.as_array()) {
        std::string problem;
        auto p = e.is_string() ? core::parse_prefix(e.as_string(), problem) : std::nullopt;
        if (!p)
          throw http_error{http::status::bad_request, "bad_field",
                           "expect_from: " + (problem.empty() ? "not a string" : problem)};
        expect_from.push_back(p->text());
      }
    } else if (k == "profile") {
      if (!v.is_string() || v.as_string() != "accept")
        throw http_error{http::status::bad_request, "bad_field",
                         "profile: only \"accept\" is available"};
    } else {
      throw http_error{http::status::bad_request, "unknown_field",
                       "unknown field '" + std::string(k) + "'"};
    }
  }
  auto t = co_await service.create_test(std::move(label), bulk, std::move(expect_from));
  if (!t)
    throw http_error{http::status::internal_server_error, "internal",
                     "test id collision, try again"};
  auto res = json_response(req, http::status::created, service.test_json(*t));
  res.set(http::field::location, "/api/v1/tests/" + t->id);
  co_return res;
}

// GET /api/v1/tests/{id}: the test, a page of its listing (?order=asc|desc, ?after=N or
// ?before=N, ?limit=1..1000) and its per-source totals; read from the lines and totals stored with
// each report, so that a test with many deliveries answers as fast as one with a few.
asio::awaitable<response> show(api& service, const request& req, const target& t,
                               const std::string& id) {
  const auto& q = t.query;
  storage::line_page page;
  if (auto order = q.find("order"); order != q.end()) {
    if (order->second != "asc" && order->second != "desc")
      throw http_error{http::status::bad_request, "bad_parameter", "order must be asc or desc"};
    page.descending = order->second == "desc";
  }
  page.after = int_param(q, "after", 0, 0, max_number);
  if (q.count("before")) page.before = int_param(q, "before", 0, 0, max_number);
  if (page.before && !page.descending)
    throw http_error{http::status::bad_request, "bad_parameter", "before goes with order=desc"};
  if (q.count("after") && page.descending)
    throw http_error{http::status::bad_request, "bad_parameter", "after goes with order=asc"};
  page.limit = static_cast<std::size_t>(int_param(q, "limit", 500, 1, max_page));
  auto test = co_await existing_test(service, id);
  auto l = co_await service.list(id, page);
  auto o = service.test_json(test);
  std::int64_t count = 0;
  for (const auto& r : l.totals) count += r.deliveries;
  o["delivery_count"] = count;
  o["more"] = l.more;
  json::array lines;
  lines.reserve(l.lines.size());
  for (const auto& line : l.lines) lines.push_back(core::to_json(line));
  o["deliveries"] = std::move(lines);
  o["sources"] = source_aggregates(l.totals);
  co_return json_response(req, http::status::ok, o);
}

// GET /api/v1/tests/{id}/deliveries/{n}: the report (report.schema.json).
asio::awaitable<response> one(api& service, const request& req, const std::string& id,
                              std::int64_t n) {
  co_await require_test(service, id);
  auto found = co_await service.report(id, n);
  if (!found)
    throw http_error{http::status::not_found, "not_found",
                     "no such delivery (or its report is not ready)"};
  co_return json_response(req, http::status::ok, *found);
}

// GET /api/v1/tests/{id}/deliveries/{n}/raw: the message as received, as an attachment,
// streamed by the server (raw_download).
asio::awaitable<routed> raw(api& service, const request& req, const std::string& id,
                            std::int64_t n) {
  co_await require_test(service, id);
  auto size = co_await service.raw_size(id, n);
  if (!size) throw http_error{http::status::not_found, "not_found", "no such delivery"};
  auto head = make_response(req, http::status::ok, "text/plain; charset=utf-8", {});
  head.set(http::field::content_disposition,
           "attachment; filename=\"" + id + "-" + std::to_string(n) + ".eml\"");
  head.content_length(*size);
  co_return raw_download{std::move(head), id, n, *size};
}

// DELETE /api/v1/tests/{id}.
asio::awaitable<response> remove(api& service, const request& req, const std::string& id) {
  co_await require_test(service, id);
  const bool deleted = co_await service.delete_test(id);
  if (!deleted) throw http_error{http::status::not_found, "not_found", "no such test"};
  co_return empty_response(req, http::status::no_content);
}

// GET /api/v1/tests/{id}/wait?after=N&timeout=S: the next report, or 204 at the time-out.
// A client waiting in more long polls and event streams than it may: 503, to try again later.
http_error too_many_waits(const api& service) {
  return {http::status::service_unavailable, "too_many_waits", service.too_many_waits(),
          std::chrono::seconds(5)};
}

asio::awaitable<response> wait(api& service, const request& req, const target& t,
                               const std::string& id, const std::string& client) {
  const auto after = int_param(t.query, "after", 0, 0, max_number);
  const auto timeout = int_param(t.query, "timeout", 30, 0, service.settings().max_wait.count());
  co_await require_test(service, id);
  auto slot = service.take_wait(client);
  if (!slot) throw too_many_waits(service);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  auto found = co_await service.next_report(id, after, deadline);
  if (found) co_return json_response(req, http::status::ok, *found);
  auto res = empty_response(req, http::status::no_content);
  res.keep_alive(req.keep_alive() && !service.stopping());
  co_return res;
}

// GET /api/v1/tests/{id}/events: from ?after=N, or the Last-Event-ID a client resumes with.
asio::awaitable<event_stream> events(api& service, const request& req, const target& t,
                                     const std::string& id) {
  co_await require_test(service, id);
  event_stream stream{id, int_param(t.query, "after", 0, 0, max_number)};
  if (auto last = req.find("Last-Event-ID"); last != req.end()) {
    const std::map<std::string, std::string> h{{"Last-Event-ID", std::string(last->value())}};
    stream.after = int_param(h, "Last-Event-ID", stream.after, 0, max_number);
  }
  co_return stream;
}

asio::awaitable<routed> dispatch(api& service, const request& req, const std::string& client) {
  const auto t = parse_target(req.target());
  const auto& p = t.path;
  if (p.empty() || p[0] == "t" || p[0] == "static") {
    require_method(req, http::verb::get, "GET");
    if (p.empty()) co_return asset(service, req, "index.html");
    if (p[0] == "static" && p.size() == 2) co_return asset(service, req, p[1]);
    if (p[0] == "t" && p.size() == 2) co_return asset(service, req, "test.html");
    if (p[0] == "t" && p.size() == 4 && p[2] == "d") co_return asset(service, req, "report.html");
    throw http_error{http::status::not_found, "not_found", "no such page"};
  }
  if (p.size() == 1 && p[0] == "healthz") {
    require_method(req, http::verb::get, "GET");
    co_return json_response(req, http::status::ok,
                            json::object{{"status", service.stopping() ? "stopping" : "ok"}});
  }
  if (p.size() == 1 && p[0] == "metrics") {
    require_method(req, http::verb::get, "GET");
    co_return make_response(req, http::status::ok, "text/plain; version=0.0.4",
                            service.metrics_text());
  }
  if (p.size() < 3 || p[0] != "api" || p[1] != "v1" || p[2] != "tests")
    throw http_error{http::status::not_found, "not_found", "no such resource"};
  if (p.size() == 3) {
    require_method(req, http::verb::post, "POST");
    co_return co_await create(service, req, client);
  }
  const std::string id = core::lowercase(p[3]);
  // Postmaster's mail (abuse reports, bounces about this host: RFC 5321 §4.5.1) is the
  // operator's: only a request with the admin token finds its test, for others it does not exist.
  if (id == "postmaster" && !service.is_admin(req[http::field::authorization]))
    throw http_error{http::status::not_found, "not_found", "no such test"};
  if (p.size() == 4) {
    if (req.method() == http::verb::delete_) co_return co_await remove(service, req, id);
    require_method(req, http::verb::get, "GET,DELETE");
    co_return co_await show(service, req, t, id);
  }
  if (p.size() == 5 && p[4] == "wait") {
    require_method(req, http::verb::get, "GET");
    co_return co_await wait(service, req, t, id, client);
  }
  if (p.size() == 5 && p[4] == "sessions") {
    require_method(req, http::verb::get, "GET");
    const auto test = co_await existing_test(service, id);
    auto sessions = co_await service.sessions_of(test);
    json::array list(sessions.begin(), sessions.end());
    co_return json_response(req, http::status::ok,
                            json::object{{"expect_from", core::string_array(test.expect_from)},
                                         {"sessions", std::move(list)}});
  }
  if (p.size() == 5 && p[4] == "events") {
    require_method(req, http::verb::get, "GET");
    co_return co_await events(service, req, t, id);
  }
  if ((p.size() == 6 || p.size() == 7) && p[4] == "deliveries") {
    require_method(req, http::verb::get, "GET");
    const auto& n = p[5];
    if (n.empty() || n.size() > 12 || n.find_first_not_of("0123456789") != std::string::npos)
      throw http_error{http::status::not_found, "not_found", "no such delivery"};
    const auto number = std::stoll(n);
    if (p.size() == 7 && p[6] == "raw") co_return co_await raw(service, req, id, number);
    if (p.size() == 6) co_return co_await one(service, req, id, number);
  }
  throw http_error{http::status::not_found, "not_found", "no such resource"};
}

}  // namespace

void secure_headers(http::response_header<>& res) {
  res.set(http::field::server, "mxlens");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Content-Security-Policy", page_policy);
  res.set("Referrer-Policy", "no-referrer");
  res.set(http::field::cache_control, "no-store");
}

response error_response(unsigned version, bool keep_alive, http::status status,
                        const std::string& code, const std::string& message) {
  auto res = make_response(version, keep_alive, status, "application/json",
                           core::printable_json(json::object{
                               {"error", json::object{{"code", code}, {"message", message}}}}));
  if (status == http::status::method_not_allowed)
    res.set(http::field::allow, message.substr(message.rfind(' ') + 1));
  return res;
}

bool is_long_poll(const request& req) {
  if (req.method() != http::verb::get) return false;
  try {
    const auto p = parse_target(req.target()).path;
    return p.size() == 5 && p[0] == "api" && p[1] == "v1" && p[2] == "tests" && p[4] == "wait";
  } catch (const http_error&) {
    return false;
  }
}

asio::awaitable<routed> route(api& service, const request& req, std::string client) {
  std::optional<http_error> failure;
  try {
    auto answer = co_await dispatch(service, req, client);
    co_return answer;
  } catch (const http_error& e) {
    failure = e;
  } catch (const std::exception& e) {
    core::log_error(std::string("http: ") + e.what());
    failure = http_error{http::status::internal_server_error, "internal", "internal error"};
  }
  auto res = error_response(req.version(), req.keep_alive(), failure->status, failure->code,
                            failure->message);
  if (failure->retry_after)
    res.set(http::field::retry_after, std::to_string(failure->retry_after->count()));
  co_return res;
}

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
    // Shares rounded to 4 decimals (a share is for reading: 0.025, not 0.025000000000000022);
    // the level compares counts, exactly.
    auto share = [&](std::int64_t n) {
      return t.deliveries ? std::round(static_cast<double>(n) / static_cast<double>(t.deliveries) *
                                       10'000.0) /
                                10'000.0
                          : 0.0;
    };
    const std::int64_t clear = t.deliveries - t.tls;
    const double plaintext = share(clear);
    json::object versions, ciphers;
    for (const auto& [k, v] : t.versions) versions[k] = v;
    for (const auto& [k, v] : t.ciphers) ciphers[k] = v;
    out.push_back(json::object{{"client_ip", ip},
                               {"deliveries", t.deliveries},
                               {"tls_share", share(t.tls)},
                               {"plaintext_share", plaintext},
                               // Under 1% low, 1-5% watch, over 5% incident.
                               {"plaintext_level", clear * 100 < t.deliveries        ? "low"
                                                   : clear * 100 <= t.deliveries * 5 ? "watch"
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

}  // namespace mxlens::webui
