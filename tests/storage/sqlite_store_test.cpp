#include "storage/sqlite_store.hpp"

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <sqlite3.h>

#include "core/json.hpp"
#include "core/report.hpp"
#include "storage/commit_queue.hpp"

using namespace mxlens;

namespace {
struct temp_db {
  std::filesystem::path dir;
  temp_db() {
    dir = std::filesystem::temp_directory_path() /
          ("mxlens-store-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
    std::filesystem::create_directories(dir);
  }
  ~temp_db() { std::filesystem::remove_all(dir); }
  std::filesystem::path file() const { return dir / "t.db"; }
};

core::test_info test(const std::string& id, core::unix_ms expires = 10'000) {
  return {id, id + "@mx.example", 1'000, expires, "", "accept", false, {}};
}

// An analysis of a delivery from `ip`, over TLS or not, with its listing line.
storage::analysis_update analysed(const std::string& id, std::int64_t n, const std::string& ip,
                                  bool tls, bool spf, bool dkim) {
  namespace json = boost::json;
  using core::auth_result;
  core::delivery facts;
  facts.number = n;
  facts.received_at = core::parse_time("2026-11-23T00:00:00.000Z");
  facts.connection.client_ip = ip;
  facts.envelope.mail_from = "a@b.example";
  facts.tls.used = tls;
  facts.tls.version = "TLSv1.3";
  facts.tls.cipher = "TLS_AES_256_GCM_SHA384";
  facts.tls.failed_handshakes = {
      {1, ip, "no shared cipher", std::nullopt, core::failure_class::cipher, "s1", std::nullopt}};
  core::analysis_summary summary{{7.5, 3, 4, 0, std::nullopt},
                                 spf ? auth_result::pass : auth_result::fail,
                                 {auth_result::fail, dkim ? auth_result::pass : auth_result::none},
                                 auth_result::none,
                                 {}};
  const core::disposition accepted{250, "2.0.0", "Ok", "accept", std::nullopt};
  storage::analysis_update u{
      id, n, core::with_disposition(json::serialize(core::to_json(summary)), accepted),
      core::line_of(facts, summary, accepted)};
  u.line.number = n;
  return u;
}

core::delivery delivery(const std::string& id, std::string raw) {
  core::delivery d;
  d.test_id = id;
  d.received_at = 2'000;
  d.session_id = "s1";
  d.connection.client_ip = "127.0.0.2";
  d.envelope.mail_from = "a@b.example";
  d.envelope.rcpt_to = {id + "@mx.example"};
  d.tls.version = "TLSv1.3";
  d.raw = std::move(raw);
  return d;
}
}  // namespace

TEST_CASE("a new database is migrated to the latest schema, and reopening keeps it", "[storage]") {
  temp_db t;
  {
    storage::sqlite_store s(t.file());
    CHECK(s.schema_version() == 9);
    CHECK(s.create_test(test("aaaaaaaa")));
    CHECK_FALSE(s.create_test(test("aaaaaaaa")));
  }
  storage::sqlite_store again(t.file());
  CHECK(again.schema_version() == 9);
  CHECK(again.find_test("aaaaaaaa"));
}

TEST_CASE("a version 1 database is upgraded in place and keeps its deliveries", "[storage]") {
  temp_db t;
  {
    // The schema as version 1 shipped it, with one delivery.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(t.file().c_str(), &db) == SQLITE_OK);
    const char* v1 = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tests (id TEXT PRIMARY KEY, address TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, label TEXT NOT NULL DEFAULT '', profile TEXT NOT NULL DEFAULT 'accept');
CREATE INDEX tests_expires ON tests(expires_at);
CREATE TABLE deliveries (id INTEGER PRIMARY KEY,
  test_id TEXT NOT NULL REFERENCES tests(id) ON DELETE CASCADE, n INTEGER NOT NULL,
  received_at INTEGER NOT NULL, session_id TEXT NOT NULL, client_ip TEXT NOT NULL,
  mail_from TEXT NOT NULL, size INTEGER NOT NULL, tls_version TEXT, facts TEXT NOT NULL,
  raw BLOB NOT NULL, UNIQUE (test_id, n));
CREATE TABLE sessions (id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL,
  client_ip TEXT NOT NULL, outcome TEXT NOT NULL, tls_version TEXT,
  failed_handshakes INTEGER NOT NULL, messages INTEGER NOT NULL, facts TEXT NOT NULL);
INSERT INTO tests VALUES ('aaaaaaaa', 'aaaaaaaa@mx.example', 1000, 10000, '', 'accept');
INSERT INTO deliveries(test_id, n, received_at, session_id, client_ip, mail_from, size,
  tls_version, facts, raw) VALUES ('aaaaaaaa', 1, 2000, 's1', '127.0.0.2', 'a@b.example', 3,
  NULL, '{}', 'old');
PRAGMA user_version = 1;
)sql";
    REQUIRE(sqlite3_exec(db, v1, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  storage::sqlite_store s(t.file());
  CHECK(s.schema_version() == 9);
  CHECK_FALSE(s.find_test("aaaaaaaa")->bulk);
  auto d = s.delivery("aaaaaaaa", 1);
  REQUIRE(d);
  CHECK(d->raw == "old");
  CHECK_FALSE(d->analysis_json);
}

TEST_CASE("an analysis is stored after its delivery and read back with it", "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  s.create_test(test("aaaaaaaa"));
  storage::batch b;
  b.deliveries = {delivery("aaaaaaaa", "m")};
  s.commit(b);
  REQUIRE(s.delivery("aaaaaaaa", 1));
  CHECK_FALSE(s.delivery("aaaaaaaa", 1)->analysis_json);  // not analyzed yet

  storage::batch later;
  later.analyses = {{"aaaaaaaa", 1, R"({"auth":{}})", {}}};
  s.commit(later);
  auto d = s.delivery("aaaaaaaa", 1);
  REQUIRE(d->analysis_json);
  CHECK(*d->analysis_json == R"({"auth":{}})");
  CHECK(d->raw == "m");
}

TEST_CASE("analyses share the commit queue's group commit and complete after it", "[storage]") {
  temp_db t;
  auto owned = std::make_unique<storage::sqlite_store>(t.file());
  owned->create_test(test("aaaaaaaa"));
  storage::commit_queue q(std::move(owned));
  std::promise<storage::commit_queue::outcome> stored, analysed;
  q.submit(std::vector{delivery("aaaaaaaa", "m")}, [&](auto o) { stored.set_value(std::move(o)); });
  auto first = stored.get_future().get();
  REQUIRE(first.error.empty());
  REQUIRE(first.numbers == std::vector<std::int64_t>{1});
  q.submit(std::vector<storage::analysis_update>{{"aaaaaaaa", 1, "{}", {}}},
           [&](auto o) { analysed.set_value(std::move(o)); });
  auto second = analysed.get_future().get();
  CHECK(second.error.empty());
  CHECK(second.numbers.empty());
  std::promise<std::optional<std::string>> read;
  q.run([&](storage::store& s) { read.set_value(s.delivery("aaaaaaaa", 1)->analysis_json); });
  CHECK(read.get_future().get() == std::optional<std::string>("{}"));
}

TEST_CASE("deliveries are numbered per test and kept byte for byte", "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  s.create_test(test("aaaaaaaa"));
  s.create_test(test("bbbbbbbb"));
  storage::batch b;
  b.deliveries = {delivery("aaaaaaaa", std::string("x\0y\r\n", 5)), delivery("bbbbbbbb", "1"),
                  delivery("aaaaaaaa", "2"), delivery("gone0000", "3")};
  s.commit(b);
  CHECK(b.deliveries[0].number == 1);
  CHECK(b.deliveries[1].number == 1);
  CHECK(b.deliveries[2].number == 2);
  CHECK(b.deliveries[3].number == 0);  // its test does not exist: skipped, batch unharmed
  auto d = s.delivery("aaaaaaaa", 1);
  REQUIRE(d);
  CHECK(d->raw == std::string("x\0y\r\n", 5));
  auto facts = boost::json::parse(d->facts_json).as_object();
  CHECK(facts.at("tls").at("version") == "TLSv1.3");
  CHECK(facts.at("envelope").at("size") == 5);
  CHECK(s.deliveries("aaaaaaaa").size() == 2);
}

TEST_CASE("retention removes expired tests with their deliveries and old sessions", "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  s.create_test(test("oldoldol", 5'000));
  s.create_test(test("newnewne", 50'000));
  storage::batch b;
  b.deliveries = {delivery("oldoldol", "a"), delivery("newnewne", "b")};
  core::session_record r;
  r.id = "sess";
  r.connection.started_at = 100;
  r.outcome = "quit";
  b.sessions = {r};
  s.commit(b);
  auto counts = s.purge(10'000, 1'000);
  CHECK(counts.tests == 1);
  CHECK(counts.deliveries == 1);
  CHECK(counts.sessions == 1);
  CHECK_FALSE(s.find_test("oldoldol"));
  CHECK(s.deliveries("newnewne").size() == 1);
}

TEST_CASE("a store over its size loses its oldest sessions and tests first", "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  const auto empty = s.used_bytes();  // the schema's pages
  storage::batch b;
  for (int i = 0; i < 10; ++i) {
    const std::string id = "sizetst" + std::to_string(i);
    s.create_test({id, id + "@mx.example", 1'000 + i, 90'000, "", "accept", false, {}});
    b.deliveries.push_back(delivery(id, std::string(100'000, static_cast<char>('a' + i))));
  }
  core::session_record r;
  r.id = "oldest-session";
  r.connection.started_at = 500;  // before every test
  r.outcome = "quit";
  b.sessions = {r};
  s.commit(b);
  const auto full = s.used_bytes();
  REQUIRE(full > 1'000'000);
  CHECK(s.trim(full, full / 2).tests == 0);  // not over: nothing removed
  auto counts = s.trim(empty + 600'000, empty + 500'000);
  CHECK(s.used_bytes() <= empty + 500'000);
  CHECK(counts.sessions == 1);
  CHECK(counts.tests >= 5);
  CHECK(counts.tests < 10);  // no more than the excess
  CHECK(counts.deliveries == counts.tests);
  CHECK(s.sessions(10, std::nullopt).empty());
  CHECK_FALSE(s.find_test("sizetst0"));         // the oldest went
  CHECK(s.deliveries("sizetst9").size() == 1);  // the newest stays, whole
  CHECK(s.delivery("sizetst9", 1)->raw == std::string(100'000, 'j'));
}

TEST_CASE("a deleted test is remembered until it would have expired", "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  s.create_test(test("deldelde", 50'000));
  CHECK_FALSE(s.was_deleted("deldelde", 1'000));
  CHECK(s.delete_test("deldelde"));
  CHECK_FALSE(s.find_test("deldelde"));
  CHECK(s.was_deleted("deldelde", 1'000));
  CHECK_FALSE(s.was_deleted("deldelde", 50'000));
  CHECK_FALSE(s.delete_test("deldelde"));  // once
  CHECK_FALSE(s.was_deleted("neverwas", 1'000));
  s.purge(60'000, 0);
  s.create_test(test("deldelde", 90'000));  // its time is over: the id may be used again
  CHECK(s.find_test("deldelde"));
  CHECK_FALSE(s.was_deleted("deldelde", 60'000));
}

TEST_CASE("a drained commit queue has committed and called back all it was given", "[storage]") {
  temp_db t;
  {
    storage::sqlite_store setup(t.file());
    setup.create_test(test("aaaaaaaa"));
  }
  storage::commit_queue q(std::make_unique<storage::sqlite_store>(t.file()));
  std::promise<void> release;
  auto held = release.get_future().share();
  q.run([held](storage::store&) { held.wait(); });  // the writer is busy meanwhile
  std::atomic<int> called{0};
  for (int i = 0; i < 20; ++i)
    q.submit(std::vector{delivery("aaaaaaaa", std::to_string(i))},
             [&called](const storage::commit_queue::outcome& o) {
               std::this_thread::sleep_for(std::chrono::milliseconds(1));
               if (o.error.empty()) ++called;
             });
  auto drained = std::async(std::launch::async, [&q] { q.drain(); });
  CHECK(drained.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  release.set_value();
  drained.wait();
  CHECK(called == 20);
}

TEST_CASE("the commit queue groups submissions and calls back after the commit", "[storage]") {
  temp_db t;
  {
    storage::sqlite_store setup(t.file());
    setup.create_test(test("aaaaaaaa"));
  }
  std::vector<std::future<storage::commit_queue::outcome>> results;
  {
    storage::commit_queue q(std::make_unique<storage::sqlite_store>(t.file()));
    // Hold the writer busy so that all 50 submissions wait for the same commit.
    std::promise<void> release;
    auto held = release.get_future().share();
    std::promise<void> busy;
    q.run([held, &busy](storage::store&) {
      busy.set_value();
      held.wait();
    });
    busy.get_future().wait();
    for (int i = 0; i < 50; ++i) {
      auto p = std::make_shared<std::promise<storage::commit_queue::outcome>>();
      results.push_back(p->get_future());
      q.submit(std::vector{delivery("aaaaaaaa", std::to_string(i))},
               [p](storage::commit_queue::outcome o) { p->set_value(std::move(o)); });
    }
    CHECK(q.commits() == 0);  // nothing is acknowledged before its commit
    release.set_value();
    for (auto& r : results) r.wait();
    CHECK(q.commits() == 1);
    // Its duration is counted once, in every bucket at least that long (the waiting task is not
    // part of it: the commit itself is what /metrics reports).
    const auto timing = q.timing();
    CHECK(timing.commits == 1);
    CHECK(timing.seconds > 0);
    CHECK(timing.seconds < 1);
    CHECK(timing.at_most.back() == 1);
    for (std::size_t i = 1; i < timing.at_most.size(); ++i)
      CHECK(timing.at_most[i - 1] <= timing.at_most[i]);
  }
  std::set<std::int64_t> numbers;
  for (auto& r : results) {
    auto o = r.get();
    CHECK(o.error.empty());
    REQUIRE(o.numbers.size() == 1);
    numbers.insert(o.numbers[0]);
  }
  CHECK(numbers.size() == 50);
  storage::sqlite_store check(t.file());
  CHECK(check.deliveries("aaaaaaaa").size() == 50);
}

TEST_CASE("each report keeps its listing line and adds to its source's totals, once", "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  s.create_test(test("aaaaaaaa"));
  storage::batch b;
  for (int i = 0; i < 5; ++i) b.deliveries.push_back(delivery("aaaaaaaa", "m"));
  s.commit(b);
  storage::batch reports;
  reports.analyses = {analysed("aaaaaaaa", 1, "127.0.0.3", true, true, true),
                      analysed("aaaaaaaa", 2, "127.0.0.2", false, false, false),
                      analysed("aaaaaaaa", 3, "127.0.0.3", true, false, true),
                      analysed("aaaaaaaa", 5, "127.0.0.3", false, true, false),
                      analysed("aaaaaaaa", 3, "127.0.0.3", true, true, true)};  // stored already
  s.commit(reports);

  auto numbers = [](const std::vector<core::report_line>& lines) {
    std::vector<std::int64_t> out;
    out.reserve(lines.size());
    for (const auto& l : lines) out.push_back(l.number);
    return out;
  };
  CHECK(numbers(s.report_lines("aaaaaaaa", {})) == std::vector<std::int64_t>{1, 2, 3, 5});
  CHECK(numbers(s.report_lines("aaaaaaaa", {1, std::nullopt, false, 2})) ==
        std::vector<std::int64_t>{2, 3});
  CHECK(numbers(s.report_lines("aaaaaaaa", {0, std::nullopt, true, 2})) ==
        std::vector<std::int64_t>{5, 3});
  CHECK(numbers(s.report_lines("aaaaaaaa", {0, 3, true, 10})) == std::vector<std::int64_t>{2, 1});
  auto first = s.report_lines("aaaaaaaa", {}).front();
  CHECK(first.tls_version == std::optional<std::string>("TLSv1.3"));
  CHECK(boost::json::parse(first.score_json).at("value") == 7.5);
  CHECK(boost::json::parse(first.disposition_json).at("code") == 250);  // none recorded: accepted
  CHECK_FALSE(s.report_lines("aaaaaaaa", {}).at(1).tls_version);

  std::map<std::pair<std::string, std::string>, storage::source_total> totals;
  for (const auto& r : s.source_totals("aaaaaaaa"))
    totals[{r.client_ip, r.tls_version.value_or("-")}] = r;
  REQUIRE(totals.size() == 3);
  const auto& tls3 = totals.at({"127.0.0.3", "TLSv1.3"});
  CHECK(tls3.deliveries == 2);
  CHECK(tls3.first_delivery == 1);
  CHECK(tls3.tls_cipher == std::optional<std::string>("TLS_AES_256_GCM_SHA384"));
  CHECK(tls3.spf_pass == 1);
  CHECK(tls3.dkim_pass == 2);
  CHECK(tls3.failed_handshakes == 2);
  const auto& plain3 = totals.at({"127.0.0.3", "-"});
  CHECK((plain3.deliveries == 1 && plain3.first_delivery == 5 && !plain3.tls_cipher &&
         plain3.spf_pass == 1));
  CHECK(totals.at({"127.0.0.2", "-"}).deliveries == 1);

  CHECK(s.delete_test("aaaaaaaa"));
  CHECK(s.report_lines("aaaaaaaa", {}).empty());
  CHECK(s.source_totals("aaaaaaaa").empty());
}

TEST_CASE("a version 3 database moves its reports out of the deliveries, with lines and totals",
          "[storage]") {
  temp_db t;
  {
    storage::sqlite_store v3(t.file(), 3);
    REQUIRE(v3.schema_version() == 3);
  }
  {
    // Version 3 kept the raw bytes and the analysis in the deliveries' own columns.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(t.file().c_str(), &db) == SQLITE_OK);
    const char* analyses = R"sql(
INSERT INTO tests(id, address, created_at, expires_at, label, profile, bulk)
  VALUES ('aaaaaaaa', 'aaaaaaaa@mx.example', 1000, 10000, '', 'accept', 0);
INSERT INTO deliveries(test_id, n, received_at, session_id, client_ip, mail_from, size,
                       tls_version, facts, raw)
  VALUES ('aaaaaaaa', 1, 2000, 's1', '127.0.0.2', 'a@b.example', 3, 'TLSv1.3', '{}', X'6f6e65'),
         ('aaaaaaaa', 2, 2000, 's1', '127.0.0.2', 'a@b.example', 3, 'TLSv1.3', '{}', X'74776f'),
         ('aaaaaaaa', 3, 2000, 's1', '127.0.0.2', 'a@b.example', 5, 'TLSv1.3', '{}', X'7468726565');
UPDATE deliveries SET facts = '{"received_at":"2026-11-23T00:00:00.000Z","tls":{"used":true,"version":"TLSv1.2","cipher":"ECDHE-RSA-AES128-GCM-SHA256","failed_handshakes":[]}}',
  analysis = '{"score":{"value":9,"max":10,"passed":9,"total":10},"auth":{"spf":{"result":"pass"},"dkim":[{"result":"fail"},{"result":"pass"}],"dmarc":{"result":"pass"}}}'
  WHERE n = 1;
UPDATE deliveries SET facts = '{"received_at":"2026-11-23T00:00:01.000Z","tls":{"used":false,"failed_handshakes":[{},{}]}}',
  analysis = '{"score":{"value":2,"max":10,"passed":1,"total":10},"auth":{"spf":{"result":"fail"},"dkim":[],"dmarc":{"result":"fail"}},"disposition":{"code":421,"enhanced":"4.3.2","text":"x","profile":"accept","reason":"y"}}'
  WHERE n = 2;
)sql";
    REQUIRE(sqlite3_exec(db, analyses, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  storage::sqlite_store s(t.file());
  CHECK(s.schema_version() == 9);
  REQUIRE(s.delivery("aaaaaaaa", 1)->analysis_json);
  CHECK(boost::json::parse(*s.delivery("aaaaaaaa", 1)->analysis_json).at("score").at("value") == 9);
  CHECK(s.delivery("aaaaaaaa", 2)->raw == "two");  // the bytes a version-4 row kept itself
  CHECK_FALSE(s.delivery("aaaaaaaa", 3)->analysis_json);
  REQUIRE(s.unanalyzed(1'000'000, 10).size() == 1);
  CHECK(s.unanalyzed(1'000'000, 10).front().summary.number == 3);
  CHECK(s.unanalyzed(1'000'000, 10).front().raw == "three");

  auto lines = s.report_lines("aaaaaaaa", {});
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].tls_version == std::optional<std::string>("TLSv1.2"));
  CHECK(lines[0].received_at == "2026-11-23T00:00:00.000Z");
  CHECK(boost::json::parse(lines[0].disposition_json).at("code") == 250);
  CHECK_FALSE(lines[1].tls_version);
  CHECK(boost::json::parse(lines[1].disposition_json).at("code") == 421);
  CHECK(boost::json::parse(lines[1].score_json).at("value") == 2);

  auto totals = s.source_totals("aaaaaaaa");
  REQUIRE(totals.size() == 2);
  for (const auto& r : totals) {
    CHECK(r.deliveries == 1);
    if (r.tls_version) {
      CHECK(r.tls_cipher == std::optional<std::string>("ECDHE-RSA-AES128-GCM-SHA256"));
      CHECK((r.spf_pass == 1 && r.dkim_pass == 1 && r.dmarc_pass == 1 && r.failed_handshakes == 0));
    } else {
      CHECK((r.spf_pass == 0 && r.dkim_pass == 0 && r.dmarc_pass == 0 && r.failed_handshakes == 2));
    }
  }
  // The new report of the third delivery joins the totals.
  storage::batch b;
  b.analyses = {analysed("aaaaaaaa", 3, "127.0.0.2", false, true, false)};
  s.commit(b);
  CHECK(s.report_lines("aaaaaaaa", {}).size() == 3);
}

TEST_CASE("a message for several tests is stored once, each row with its composed report",
          "[storage]") {
  temp_db t;
  storage::sqlite_store s(t.file());
  for (const char* id : {"aaaaaaaa", "bbbbbbbb", "cccccccc"}) s.create_test(test(id));
  storage::batch earlier;
  earlier.deliveries = {delivery("bbbbbbbb", "before")};
  s.commit(earlier);

  const std::string raw(3u << 20, 'x');  // 3 MiB
  storage::message_delivery m{
      delivery("ignored!", raw), {"aaaaaaaa", "bbbbbbbb", "gonegone"}, {}, {}};
  std::vector<std::int64_t> seen;
  m.compose = [&](const std::vector<std::int64_t>& numbers) {
    seen = numbers;
    return storage::composed_report{R"({"score":{"value":8,"max":10,"passed":1,"total":2}})",
                                    core::report_line{}};
  };
  storage::batch b;
  b.messages.push_back(std::move(m));
  s.commit(b);
  CHECK(b.messages[0].numbers == std::vector<std::int64_t>{1, 2, 0});  // the third test is gone
  CHECK(seen == b.messages[0].numbers);  // composed once the rows were numbered

  for (auto [id, n] : {std::pair{"aaaaaaaa", 1}, std::pair{"bbbbbbbb", 2}}) {
    auto d = s.delivery(id, n);
    REQUIRE(d);
    CHECK(d->raw == raw);
    REQUIRE(d->analysis_json);
    CHECK(boost::json::parse(*d->analysis_json).at("score").at("value") == 8);
    CHECK(boost::json::parse(d->facts_json).at("test_id") == id);
    CHECK(boost::json::parse(d->facts_json).at("delivery") == n);
    CHECK(boost::json::parse(d->facts_json).at("envelope").at("size") == raw.size());
    CHECK(s.report_lines(id, {}).back().number == n);
  }
  CHECK(s.delivery("bbbbbbbb", 1)->raw == "before");

  // The bytes are in the file once, and go with the last row that points at them.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(t.file().c_str(), &db) == SQLITE_OK);
  auto number = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    const auto v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  };
  CHECK(number("SELECT COALESCE(SUM(length(raw)), 0) FROM messages") ==
        static_cast<std::int64_t>(raw.size() + std::string("before").size()));
  CHECK(number("SELECT COALESCE(SUM(length(raw)), 0) FROM deliveries") == 0);
  // So is the report: one analysis, read by each row (listings too).
  CHECK(number("SELECT COUNT(*) FROM messages WHERE analysis IS NOT NULL") == 1);
  CHECK(number("SELECT SUM(length(analysis)) FROM reports") == 0);
  for (const char* id : {"aaaaaaaa", "bbbbbbbb"}) {
    auto records = s.delivery_records(id, 0, 10);
    REQUIRE(records.back().analysis_json);
    CHECK(boost::json::parse(*records.back().analysis_json).at("score").at("value") == 8);
  }
  CHECK(s.delete_test("aaaaaaaa"));
  CHECK(number("SELECT COUNT(*) FROM messages") == 2);  // still the second test's
  CHECK(s.delete_test("bbbbbbbb"));
  CHECK(number("SELECT COUNT(*) FROM messages") == 0);
  sqlite3_close(db);

  // A message none of whose tests exists stores nothing and composes nothing.
  storage::message_delivery none{delivery("x", "y"), {"gonegone"}, {}, {}};
  bool composed = false;
  none.compose = [&](const std::vector<std::int64_t>&) {
    composed = true;
    return storage::composed_report{};
  };
  storage::batch nothing;
  nothing.messages.push_back(std::move(none));
  s.commit(nothing);
  CHECK(nothing.messages[0].numbers == std::vector<std::int64_t>{0});
  CHECK_FALSE(composed);
}
