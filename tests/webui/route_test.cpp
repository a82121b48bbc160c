// route() without a socket: every endpoint and every error, over the real api service on a real
// SQLite store in a temporary directory (its writer thread and the blocking pool included).
#include "webui/route.hpp"

#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "core/json.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "storage/sqlite_store.hpp"

using namespace mxlens;
namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

struct fixed_clock final : core::clock {
  core::unix_ms t = 1'800'000'000'000;
  core::unix_ms now() const override { return t; }
};

// A store whose every read fails, as a broken disk would.
struct failing_store final : storage::store {
  [[noreturn]] static void fail() { throw storage::store_error("disk I/O error"); }
  bool create_test(const core::test_info&) override { fail(); }
  std::optional<core::test_info> find_test(const std::string&) override { fail(); }
  bool delete_test(const std::string&) override { fail(); }
  bool was_deleted(const std::string&, core::unix_ms) override { fail(); }
  void commit(storage::batch&) override { fail(); }
  std::vector<core::delivery_summary> deliveries(const std::string&) override { fail(); }
  std::optional<storage::stored_delivery> delivery(const std::string&, std::int64_t) override {
    fail();
  }
  std::optional<std::uint64_t> raw_size(const std::string&, std::int64_t) override { fail(); }
  std::optional<std::string> raw_part(const std::string&, std::int64_t, std::uint64_t,
                                      std::size_t) override {
    fail();
  }
  std::vector<storage::stored_delivery> unanalyzed(core::unix_ms, std::size_t) override { fail(); }
  std::vector<std::string> sessions_since(core::unix_ms, std::size_t) override { fail(); }
  std::vector<storage::delivery_record> delivery_records(const std::string&, std::int64_t,
                                                         std::size_t) override {
    fail();
  }
  std::vector<core::report_line> report_lines(const std::string&,
                                              const storage::line_page&) override {
    fail();
  }
  std::vector<storage::source_total> source_totals(const std::string&) override { fail(); }
  std::vector<std::string> sessions_with_failed_handshakes(const std::string&, core::unix_ms,
                                                           std::size_t) override {
    fail();
  }
  std::vector<std::string> sessions(std::size_t, const std::optional<std::string>&) override {
    fail();
  }
  std::vector<core::session_count> session_counts(core::unix_ms, std::size_t,
                                                  const std::optional<std::string>&) override {
    fail();
  }
  std::uint64_t reusable_bytes() override { fail(); }
  std::uint64_t used_bytes() override { fail(); }
  storage::purge_counts trim(std::uint64_t, std::uint64_t) override { fail(); }
  storage::purge_counts purge(core::unix_ms, core::unix_ms) override { fail(); }
  std::optional<std::string> meta(const std::string&) override { fail(); }
  void set_meta(const std::string&, const std::string&) override { fail(); }
};

const std::vector<std::pair<std::string, std::string>> json_type{
    {"Content-Type", "application/json"}};

struct harness {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("mxlens-route-" + std::to_string(::getpid()) + "-" +
                               std::to_string(reinterpret_cast<std::uintptr_t>(this)));
  std::filesystem::path db = (std::filesystem::create_directories(dir), dir / "mxlens.db");
  asio::io_context io;
  asio::thread_pool pool{1};
  storage::commit_queue queue{std::make_unique<storage::sqlite_store>(db)};
  storage::sqlite_store reader{db};
  failing_store broken;
  webui::hub hub;
  webui::metrics counters;
  fixed_clock clock;
  webui::api service;

  explicit harness(bool broken_reader = false)
      : service(settings(), pool, broken_reader ? static_cast<storage::store&>(broken) : reader,
                queue, hub, counters, clock) {}
  ~harness() {
    pool.join();
    std::filesystem::remove_all(dir);
  }

  static webui::http_settings settings() {
    webui::http_settings s;
    s.public_url = "http://mx.example:8025";
    s.domain = "mx.example";
    s.max_wait = std::chrono::seconds(60);
    return s;
  }

  // Runs the coroutine to its end on this thread.
  template <class T>
  T run(asio::awaitable<T> a) {
    auto done = asio::co_spawn(io, std::move(a), asio::use_future);
    io.restart();
    io.run();
    return done.get();
  }

  webui::routed call(http::verb method, const std::string& target, std::string body = {},
                     const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    webui::request req{method, target, 11};
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    return run(webui::route(service, req));
  }

  webui::response get(const std::string& target) {
    return std::get<webui::response>(call(http::verb::get, target));
  }

  std::string new_test(const std::string& body = {}) {
    auto res = std::get<webui::response>(call(http::verb::post, "/api/v1/tests", body, json_type));
    REQUIRE(res.result() == http::status::created);
    return std::string(json::parse(res.body()).at("id").as_string());
  }

  // Stores `count` deliveries to the test, and the analysis of those in `analysed`.
  void deliver(const std::string& id, int count, const std::vector<std::int64_t>& analysed) {
    std::vector<core::delivery> ds;
    for (int i = 0; i < count; ++i) {
      core::delivery d;
      d.test_id = id;
      d.received_at = clock.t;
      d.session_id = "s" + std::to_string(i);
      d.connection.client_ip = "127.0.0.2";
      d.envelope.mail_from = "a@sender.example";
      d.envelope.rcpt_to = {id + "@mx.example"};
      d.raw = "Subject: " + std::to_string(i + 1) + "\r\n\r\nbody\r\n";
      ds.push_back(std::move(d));
    }
    std::promise<storage::commit_queue::outcome> stored;
    queue.submit(std::move(ds),
                 [&](const storage::commit_queue::outcome& o) { stored.set_value(o); });
    REQUIRE(stored.get_future().get().error.empty());
    analyse(id, analysed);
  }

  void analyse(const std::string& id, const std::vector<std::int64_t>& numbers) {
    REQUIRE(store_analyses(id, numbers).empty());
  }

  // The analyses' commit, as the delivery pipeline makes it for a recovered delivery; the commit's
  // error text (empty on success). Safe from any thread (no assertions here).
  std::string store_analyses(const std::string& id, const std::vector<std::int64_t>& numbers) {
    std::vector<storage::analysis_update> updates;
    for (auto n : numbers) {
      core::delivery facts;
      facts.number = n;
      facts.received_at = core::parse_time("2026-12-01T00:00:00.000Z");
      facts.connection.client_ip = "127.0.0.2";
      facts.envelope.mail_from = "a@sender.example";
      const core::analysis_summary summary{
          {9.5, 5, 5, 0, std::nullopt}, core::auth_result::pass, {}, core::auth_result::none, {}};
      const core::disposition accepted{250, "2.0.0", "Ok", "accept", std::nullopt};
      storage::analysis_update u{
          id, n, core::with_disposition(json::serialize(core::to_json(summary)), accepted),
          core::line_of(facts, summary, accepted)};
      u.line.number = n;
      updates.push_back(std::move(u));
    }
    std::promise<storage::commit_queue::outcome> stored;
    queue.submit(std::move(updates),
                 [&](const storage::commit_queue::outcome& o) { stored.set_value(o); });
    return stored.get_future().get().error;
  }
};

json::value body_of(const webui::response& res) { return json::parse(res.body()); }

// An error response: its status, a JSON body with the code, and the headers every response has.
void check_error(const webui::response& res, http::status status, const std::string& code) {
  INFO(res.body());
  CHECK(res.result() == status);
  CHECK(res[http::field::content_type] == "application/json");
  CHECK(res["Content-Security-Policy"].find("default-src 'self'") == 0);
  CHECK(body_of(res).at("error").at("code").as_string() == code);
  CHECK(!body_of(res).at("error").at("message").as_string().empty());
}

void check_error(const webui::routed& r, http::status status, const std::string& code) {
  REQUIRE(std::holds_alternative<webui::response>(r));
  check_error(std::get<webui::response>(r), status, code);
}

}  // namespace

TEST_CASE("route: the pages and their files", "[webui]") {
  harness h;
  for (const auto& [target, type] : std::vector<std::pair<std::string, std::string>>{
           {"/", "text/html; charset=utf-8"},
           {"/t/aaaaaaaaaaaaaaaa", "text/html; charset=utf-8"},
           {"/t/aaaaaaaaaaaaaaaa/d/3", "text/html; charset=utf-8"},
           {"/static/app.css", "text/css; charset=utf-8"},
           {"/static/report.js", "text/javascript; charset=utf-8"}}) {
    INFO(target);
    auto res = h.get(target);
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == type);
    CHECK(res["X-Content-Type-Options"] == "nosniff");
    CHECK(!res.body().empty());
  }
  CHECK(h.get("/").body().find("<title>") != std::string::npos);
  check_error(h.get("/static/missing.js"), http::status::not_found, "not_found");
  check_error(h.get("/static/..%2Fhttp_server.cpp"), http::status::not_found, "not_found");
  check_error(h.get("/t"), http::status::not_found, "not_found");
  auto post = std::get<webui::response>(h.call(http::verb::post, "/"));
  check_error(post, http::status::method_not_allowed, "method_not_allowed");
  CHECK(post[http::field::allow] == "GET");
}

TEST_CASE("route: healthz and metrics", "[webui]") {
  harness h;
  auto health = h.get("/healthz");
  CHECK(health.result() == http::status::ok);
  CHECK(body_of(health) == json::parse(R"({"status":"ok"})"));
  auto metrics = h.get("/metrics");
  CHECK(metrics.result() == http::status::ok);
  CHECK(metrics[http::field::content_type] == "text/plain; version=0.0.4");
  CHECK(metrics.body().find("mxlens_store_commit_seconds_bucket") != std::string::npos);
  h.service.stop();
  CHECK(body_of(h.get("/healthz")) == json::parse(R"({"status":"stopping"})"));
}

TEST_CASE("route: POST /api/v1/tests makes a test, and refuses bad bodies", "[webui]") {
  harness h;
  auto res = std::get<webui::response>(h.call(http::verb::post, "/api/v1/tests",
                                              R"({"label":"release 4.2","bulk":true})", json_type));
  REQUIRE(res.result() == http::status::created);
  auto t = body_of(res).as_object();
  const std::string id(t.at("id").as_string());
  CHECK(core::is_valid_test_id(id));
  CHECK(res[http::field::location] == "/api/v1/tests/" + id);
  CHECK(t.at("address").as_string() == id + "@mx.example");
  CHECK(t.at("url").as_string() == "http://mx.example:8025/t/" + id);
  CHECK(t.at("label").as_string() == "release 4.2");
  CHECK(t.at("bulk").as_bool());
  CHECK(t.at("profile").as_string() == "accept");
  CHECK(h.get("/api/v1/tests/" + id).result() == http::status::ok);  // stored, not only answered

  for (const auto& [body, code] : std::vector<std::pair<std::string, std::string>>{
           {"{not json", "bad_json"},
           {"[1]", "bad_json"},
           {R"({"label":5})", "bad_field"},
           {R"({"label":")" + std::string(201, 'x') + "\"}", "bad_field"},
           {R"({"bulk":"yes"})", "bad_field"},
           {R"({"profile":"gmail"})", "bad_field"},
           {R"({"colour":"red"})", "unknown_field"}}) {
    INFO(body);
    check_error(h.call(http::verb::post, "/api/v1/tests", body, json_type),
                http::status::bad_request, code);
  }
  auto list = h.get("/api/v1/tests");
  check_error(list, http::status::method_not_allowed, "method_not_allowed");
  CHECK(list[http::field::allow] == "POST");
}

TEST_CASE("route: a test, its listing pages, its reports and its raw messages", "[webui]") {
  harness h;
  const auto id = h.new_test();
  const auto base = "/api/v1/tests/" + id;

  auto empty = body_of(h.get(base)).as_object();
  CHECK(empty.at("delivery_count").as_int64() == 0);
  CHECK(empty.at("deliveries").as_array().empty());
  CHECK(empty.at("sources").as_array().empty());
  CHECK_FALSE(empty.at("more").as_bool());

  h.deliver(id, 3, {1, 3});  // delivery 2's report is not stored yet
  auto page = body_of(h.get(base)).as_object();
  CHECK(page.at("delivery_count").as_int64() == 2);
  REQUIRE(page.at("deliveries").as_array().size() == 2);
  CHECK(page.at("deliveries").as_array()[1].at("delivery").as_int64() == 3);
  CHECK(page.at("sources").as_array()[0].at("client_ip").as_string() == "127.0.0.2");
  auto first = body_of(h.get(base + "?limit=1")).as_object();
  CHECK(first.at("deliveries").as_array().size() == 1);
  CHECK(first.at("more").as_bool());
  auto older = body_of(h.get(base + "?order=desc&before=3")).as_object();
  REQUIRE(older.at("deliveries").as_array().size() == 1);
  CHECK(older.at("deliveries").as_array()[0].at("delivery").as_int64() == 1);
  // Ids and parameters are percent-decoded (RFC 3986 §2.1); ids are case-insensitive.
  std::string upper = id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(h.get("/api/v1/tests/" + upper).result() == http::status::ok);
  CHECK(h.get("/api/v1/tests/%" + std::string(1, "0123456789ABCDEF"[id[0] >> 4]) +
              std::string(1, "0123456789ABCDEF"[id[0] & 15]) + id.substr(1) + "?order=%64esc")
            .result() == http::status::ok);

  for (const auto& query : {"?order=sideways", "?limit=0", "?limit=1001", "?limit=x", "?before=2",
                            "?order=desc&after=1", "?after=-1", "?after=99999999999999"}) {
    INFO(query);
    check_error(h.get(base + query), http::status::bad_request, "bad_parameter");
  }

  auto report = h.get(base + "/deliveries/1");
  CHECK(report.result() == http::status::ok);
  CHECK(body_of(report).at("delivery").as_int64() == 1);
  CHECK(body_of(report).at("score").at("value").as_double() == 9.5);
  check_error(h.get(base + "/deliveries/2"), http::status::not_found, "not_found");  // not ready
  check_error(h.get(base + "/deliveries/9"), http::status::not_found, "not_found");
  check_error(h.get(base + "/deliveries/x"), http::status::not_found, "not_found");

  // Raw bytes need no report; the route answers with the head and where the bytes are, and the
  // server streams them (test_http reads them through it).
  auto routed_raw = h.call(http::verb::get, base + "/deliveries/2/raw");
  REQUIRE(std::holds_alternative<webui::raw_download>(routed_raw));
  auto& download = std::get<webui::raw_download>(routed_raw);
  const std::string expected = "Subject: 2\r\n\r\nbody\r\n";
  CHECK(download.size == expected.size());
  CHECK(download.head.result() == http::status::ok);
  CHECK(download.head[http::field::content_length] == std::to_string(expected.size()));
  CHECK(download.head[http::field::content_type] == "text/plain; charset=utf-8");
  CHECK(download.head[http::field::content_disposition] ==
        "attachment; filename=\"" + id + "-2.eml\"");
  CHECK(download.head["X-Content-Type-Options"] == "nosniff");
  std::string read;
  while (read.size() < download.size) read += *h.run(h.service.raw_part(id, 2, read.size(), 5));
  CHECK(read == expected);
  CHECK(h.run(h.service.raw_part(id, 2, read.size(), 5))->empty());  // nothing past the end
  check_error(h.get(base + "/deliveries/9/raw"), http::status::not_found, "not_found");

  auto put = std::get<webui::response>(h.call(http::verb::put, base));
  check_error(put, http::status::method_not_allowed, "method_not_allowed");
  CHECK(put[http::field::allow] == "GET,DELETE");
}

TEST_CASE("route: unknown tests and resources are 404, malformed targets 400", "[webui]") {
  harness h;
  check_error(h.get("/api/v1/tests/aaaaaaaaaaaaaaaa"), http::status::not_found, "not_found");
  check_error(h.get("/api/v1/tests/..%2F..%2Fetc"), http::status::not_found, "not_found");
  check_error(h.get("/api/v1/tests/aaaaaaaaaaaaaaaa/wait"), http::status::not_found, "not_found");
  check_error(h.get("/api/v1/tests/aaaaaaaaaaaaaaaa/events"), http::status::not_found, "not_found");
  check_error(h.get("/api/v1/nothing"), http::status::not_found, "not_found");
  check_error(h.get("/nothing"), http::status::not_found, "not_found");
  const auto id = h.new_test();
  check_error(h.get("/api/v1/tests/" + id + "/else"), http::status::not_found, "not_found");
  for (const auto& target :
       {std::string("/api/v1/tests/%zz"), std::string("*"), "/api/v1/tests/" + id + "?order=%4",
        "http://mx.example/api/v1/tests/" + id}) {
    INFO(target);
    check_error(h.get(target), http::status::bad_request, "bad_target");
  }
}

TEST_CASE("route: a long poll answers with the next report, or 204 at its time-out", "[webui]") {
  harness h;
  const auto id = h.new_test();
  const auto base = "/api/v1/tests/" + id;
  h.deliver(id, 2, {1});
  auto next = h.get(base + "/wait?timeout=0");
  CHECK(next.result() == http::status::ok);
  CHECK(body_of(next).at("delivery").as_int64() == 1);
  auto none = h.get(base + "/wait?after=1&timeout=0");  // delivery 2 has no report yet
  CHECK(none.result() == http::status::no_content);
  CHECK(none.body().empty());
  check_error(h.get(base + "/wait?timeout=lots"), http::status::bad_request, "bad_parameter");
  check_error(h.get(base + "/wait?timeout=61"), http::status::bad_request, "bad_parameter");
  check_error(h.get(base + "/wait?after=x"), http::status::bad_request, "bad_parameter");
  auto post = std::get<webui::response>(h.call(http::verb::post, base + "/wait"));
  check_error(post, http::status::method_not_allowed, "method_not_allowed");
}

TEST_CASE("route: a long poll sleeps until the report is stored and the hub says so", "[webui]") {
  harness h;
  const auto id = h.new_test();
  h.deliver(id, 1, {});
  // The report arrives 300 ms into the wait, from another thread, as the delivery pipeline stores
  // it.
  std::string stored = "not yet";
  std::thread analysis([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stored = h.store_analyses(id, {1});
    h.hub.notify(id);
  });
  const auto start = std::chrono::steady_clock::now();
  auto res = h.get("/api/v1/tests/" + id + "/wait?timeout=10");
  const auto waited = std::chrono::steady_clock::now() - start;
  analysis.join();
  CHECK(stored.empty());
  CHECK(res.result() == http::status::ok);
  CHECK(body_of(res).at("delivery").as_int64() == 1);
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(waited < std::chrono::seconds(5));  // woken, not timed out
}

TEST_CASE("route: responses keep the connection only when the client and the server both may",
          "[webui]") {
  harness h;
  const auto id = h.new_test();
  auto closing = [&](const std::string& target) {
    webui::request req{http::verb::get, target, 11};
    req.keep_alive(false);
    return std::get<webui::response>(h.run(webui::route(h.service, req)));
  };
  CHECK(h.get("/healthz").keep_alive());
  CHECK_FALSE(closing("/healthz").keep_alive());
  CHECK_FALSE(closing("/api/v1/tests/aaaaaaaaaaaaaaaa").keep_alive());           // an error
  CHECK_FALSE(closing("/api/v1/tests/" + id + "/wait?timeout=0").keep_alive());  // a 204
  CHECK(h.get("/api/v1/tests/" + id + "/wait?timeout=0").keep_alive());
  h.service.stop();
  auto stopping = h.get("/api/v1/tests/" + id + "/wait?timeout=5");
  CHECK(stopping.result() == http::status::no_content);  // at once, not after 5 s
  CHECK_FALSE(stopping.keep_alive());
}

TEST_CASE("route: an event stream starts after ?after or Last-Event-ID", "[webui]") {
  harness h;
  const auto id = h.new_test();
  const auto events = "/api/v1/tests/" + id + "/events";
  auto plain = h.call(http::verb::get, events);
  REQUIRE(std::holds_alternative<webui::event_stream>(plain));
  CHECK(std::get<webui::event_stream>(plain).test_id == id);
  CHECK(std::get<webui::event_stream>(plain).after == 0);
  CHECK(std::get<webui::event_stream>(h.call(http::verb::get, events + "?after=2")).after == 2);
  auto resumed = h.call(http::verb::get, events + "?after=2", {}, {{"Last-Event-ID", "5"}});
  CHECK(std::get<webui::event_stream>(resumed).after == 5);
  check_error(h.call(http::verb::get, events, {}, {{"Last-Event-ID", "five"}}),
              http::status::bad_request, "bad_parameter");
  check_error(h.call(http::verb::get, events + "?after=x"), http::status::bad_request,
              "bad_parameter");
  check_error(h.call(http::verb::post, events), http::status::method_not_allowed,
              "method_not_allowed");
}

TEST_CASE("api: events follow the listing lines, and wait for a report still missing", "[webui]") {
  harness h;
  const auto id = h.new_test();
  h.deliver(id, 3, {1, 3});
  auto numbers = [&](std::int64_t after) {
    std::vector<std::int64_t> out;
    for (const auto& l : h.run(h.service.lines_after(id, after, 100))) out.push_back(l.number);
    return out;
  };
  CHECK(numbers(0) == std::vector<std::int64_t>{1});  // 3 waits for 2
  CHECK(numbers(2) == std::vector<std::int64_t>{3});
  h.analyse(id, {2});
  CHECK(numbers(0) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(h.run(h.service.lines_after(id, 0, 2)).size() == 2);
}

TEST_CASE("route: DELETE removes a test once", "[webui]") {
  harness h;
  const auto id = h.new_test();
  h.deliver(id, 1, {1});
  auto gone = std::get<webui::response>(h.call(http::verb::delete_, "/api/v1/tests/" + id));
  CHECK(gone.result() == http::status::no_content);
  CHECK(gone.body().empty());
  check_error(h.get("/api/v1/tests/" + id), http::status::not_found, "not_found");
  check_error(h.call(http::verb::delete_, "/api/v1/tests/" + id), http::status::not_found,
              "not_found");
}

TEST_CASE("route: an expired test is gone", "[webui]") {
  harness h;
  const auto id = h.new_test();
  h.clock.t += std::int64_t{31} * 86'400'000;  // past the 30 days of retention
  check_error(h.get("/api/v1/tests/" + id), http::status::not_found, "not_found");
}

TEST_CASE("route: a failing store is a 500 with a JSON body, not an exception", "[webui]") {
  harness h(true);
  check_error(h.get("/api/v1/tests/aaaaaaaaaaaaaaaa"), http::status::internal_server_error,
              "internal");
  check_error(h.get("/api/v1/tests/aaaaaaaaaaaaaaaa/deliveries/1/raw"),
              http::status::internal_server_error, "internal");
  CHECK(h.get("/healthz").result() == http::status::ok);  // what needs no store still answers
}
