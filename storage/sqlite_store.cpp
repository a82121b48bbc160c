#include "storage/sqlite_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <optional>

#include "core/json.hpp"
#include "core/report.hpp"

namespace mxlens::storage {

namespace {

// Each entry takes the schema from version i to i+1. Entries are never edited once released;
// a change of schema is a new entry.
constexpr const char* migrations[] = {
    // 1: tests, deliveries, sessions, meta
    R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE tests (
  id         TEXT PRIMARY KEY,
  address    TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  label      TEXT NOT NULL DEFAULT '',
  profile    TEXT NOT NULL DEFAULT 'accept'
);
CREATE INDEX tests_expires ON tests(expires_at);
CREATE TABLE deliveries (
  id          INTEGER PRIMARY KEY,
  test_id     TEXT NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
  n           INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  session_id  TEXT NOT NULL,
  client_ip   TEXT NOT NULL,
  mail_from   TEXT NOT NULL,
  size        INTEGER NOT NULL,
  tls_version TEXT,
  facts       TEXT NOT NULL,
  raw         BLOB NOT NULL,
  UNIQUE (test_id, n)
);
CREATE TABLE sessions (
  id                TEXT PRIMARY KEY,
  started_at        INTEGER NOT NULL,
  ended_at          INTEGER NOT NULL,
  client_ip         TEXT NOT NULL,
  outcome           TEXT NOT NULL,
  tls_version       TEXT,
  failed_handshakes INTEGER NOT NULL,
  messages          INTEGER NOT NULL,
  facts             TEXT NOT NULL
);
CREATE INDEX sessions_client ON sessions(client_ip, started_at);
CREATE INDEX sessions_started ON sessions(started_at);
)sql",
    // 2: the analysis of each delivery, stored after the delivery
    R"sql(
ALTER TABLE deliveries ADD COLUMN analysis TEXT;
)sql",
    // 3: tests judged as bulk senders
    R"sql(
ALTER TABLE tests ADD COLUMN bulk INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4: reports in a table of their own (storing one no longer rewrites the delivery's row and
    // raw bytes), each with its listing line, and per-source totals kept as reports are stored:
    // a test with 100,000 deliveries is listed without reading any report. The sessions with a
    // failed handshake get an index of their own: a delivery's context reads only those, and a
    // busy sender has thousands of others.
    R"sql(
CREATE INDEX sessions_failed ON sessions(client_ip, started_at) WHERE failed_handshakes > 0;
CREATE TABLE reports (
  delivery_id INTEGER PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
  analysis    TEXT NOT NULL
);
CREATE TABLE report_lines (
  test_id     TEXT NOT NULL,
  n           INTEGER NOT NULL,
  received_at TEXT NOT NULL,
  client_ip   TEXT NOT NULL,
  mail_from   TEXT NOT NULL,
  tls_version TEXT,
  score       TEXT NOT NULL,
  disposition TEXT NOT NULL,
  PRIMARY KEY (test_id, n),
  FOREIGN KEY (test_id, n) REFERENCES deliveries(test_id, n) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE source_totals (
  test_id           TEXT NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
  client_ip         TEXT NOT NULL,
  tls_version       TEXT NOT NULL,
  tls_cipher        TEXT NOT NULL,
  first_delivery    INTEGER NOT NULL,
  deliveries        INTEGER NOT NULL,
  spf_pass          INTEGER NOT NULL,
  dkim_pass         INTEGER NOT NULL,
  dmarc_pass        INTEGER NOT NULL,
  failed_handshakes INTEGER NOT NULL,
  PRIMARY KEY (test_id, client_ip, tls_version, tls_cipher)
) WITHOUT ROWID;
INSERT INTO reports(delivery_id, analysis)
  SELECT id, analysis FROM deliveries WHERE analysis IS NOT NULL;
INSERT INTO report_lines
  SELECT test_id, n, json_extract(facts, '$.received_at'), client_ip, mail_from,
         CASE WHEN json_extract(facts, '$.tls.used') THEN COALESCE(json_extract(facts, '$.tls.version'), '') END,
         COALESCE(json_extract(analysis, '$.score'), 'null'),
         COALESCE(json_extract(analysis, '$.disposition'),
                  '{"code":250,"enhanced":"2.0.0","text":"delivered","profile":"accept","reason":null}')
  FROM deliveries WHERE analysis IS NOT NULL;
INSERT INTO source_totals
  SELECT test_id, client_ip, tls_version, tls_cipher, MIN(n), COUNT(*), SUM(spf), SUM(dkim),
         SUM(dmarc), SUM(failed)
  FROM (SELECT test_id, n, client_ip,
               CASE WHEN json_extract(facts, '$.tls.used')
                    THEN COALESCE(json_extract(facts, '$.tls.version'), '') ELSE '' END AS tls_version,
               CASE WHEN json_extract(facts, '$.tls.used')
                    THEN COALESCE(json_extract(facts, '$.tls.cipher'), '') ELSE '' END AS tls_cipher,
               COALESCE(json_extract(analysis, '$.auth.spf.result') = 'pass', 0) AS spf,
               EXISTS (SELECT 1 FROM json_each(analysis, '$.auth.dkim')
                       WHERE json_extract(value, '$.result') = 'pass') AS dkim,
               COALESCE(json_extract(analysis, '$.auth.dmarc.result') = 'pass', 0) AS dmarc,
               COALESCE(json_array_length(facts, '$.tls.failed_handshakes'), 0) AS failed
        FROM deliveries WHERE analysis IS NOT NULL)
  GROUP BY test_id, client_ip, tls_version, tls_cipher;
ALTER TABLE deliveries DROP COLUMN analysis;
)sql",
    // 5: a message's bytes stored once, whatever number of tests received it: rows written from
    // now on point at their message and keep an empty raw; older rows keep their own bytes. A
    // message goes with the last row that points at it.
    R"sql(
CREATE TABLE messages (
  id  INTEGER PRIMARY KEY,
  raw BLOB NOT NULL
);
ALTER TABLE deliveries ADD COLUMN message_id INTEGER REFERENCES messages(id);
CREATE INDEX deliveries_message ON deliveries(message_id) WHERE message_id IS NOT NULL;
CREATE TRIGGER message_with_last_row AFTER DELETE ON deliveries
  WHEN old.message_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = old.message_id)
BEGIN
  DELETE FROM messages WHERE id = old.message_id;
END;
)sql",
    // 6: the sending addresses a test expects (a JSON array of prefixes)
    R"sql(
ALTER TABLE tests ADD COLUMN expect_from TEXT NOT NULL DEFAULT '[]';
)sql",
    // 7: deleted tests, until they would have expired, so that --catch-all does not bring one
    // back on its next mail
    R"sql(
CREATE TABLE deleted_tests (
  id    TEXT PRIMARY KEY,
  until INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 8: a message's report stored once with its bytes, whatever number of tests received it
    // (one analysis, one disposition for all its rows): such rows' reports keep an empty analysis
    // and are read from their message.
    R"sql(
ALTER TABLE messages ADD COLUMN analysis TEXT;
)sql",
    // 9: connections that said nothing, counted per client address and minute
    R"sql(
CREATE TABLE session_counts (
  client_ip   TEXT NOT NULL,
  minute      INTEGER NOT NULL,
  connections INTEGER NOT NULL,
  refused     INTEGER NOT NULL,
  PRIMARY KEY (client_ip, minute)
) WITHOUT ROWID;
CREATE INDEX session_counts_minute ON session_counts(minute);
)sql",
};

constexpr int latest_version = static_cast<int>(std::size(migrations));

// A row's report: its own, or its message's (migration 8); NULL while it has none.
#define REPORT_OF_ROW \
  "CASE WHEN reports.analysis = '' THEN messages.analysis ELSE reports.analysis END"

}  // namespace

// A statement from the store's cache (prepared once, on first use, and kept until the store
// closes; keyed by the address of its SQL literal). It is reset and its bindings cleared when the
// handle goes, which also ends the read a SELECT left open. Binds by position, starting at 1.
class sqlite_store::statement {
 public:
  statement(sqlite_store& store, const char* sql) : db_(store.db_) {
    auto& cached = store.statements_[sql];
    if (!cached &&
        sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &cached, nullptr) != SQLITE_OK)
      throw store_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db_));
    stmt_ = cached;
  }
  ~statement() { reset(); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  statement& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    return *this;
  }
  // A temporary is copied: it is gone before the statement runs.
  statement& bind(int i, std::string&& v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  statement& bind(int i, const std::optional<std::string>& v) {
    if (v) return bind(i, *v);
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  statement& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v)); }
  statement& bind_blob(int i, const std::string& v) {
    check(sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_STATIC));
    return *this;
  }

  // True while there is a row to read.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw store_error(std::string("sqlite step: ") + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  // Text that is empty when absent ('' stands for none where a key cannot hold NULL).
  std::optional<std::string> nonempty_text(int col) {
    auto t = text(col);
    if (t.empty()) return std::nullopt;
    return t;
  }
  bool is_null(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::optional<std::string> optional_text(int col) {
    if (is_null(col)) return std::nullopt;
    return text(col);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw store_error(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

sqlite_store::sqlite_store(const std::filesystem::path& file)
    : sqlite_store(file, latest_version) {}

sqlite_store::sqlite_store(const std::filesystem::path& file, int version) {
  int rc =
      sqlite3_open_v2(file.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw store_error("cannot open " + file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  exec("PRAGMA journal_mode=WAL");
  // The 250 after DATA is written once the commit is on disk (tests/integration/test_durability).
  exec("PRAGMA synchronous=FULL");
  // The log of a transaction holding a large message is as large as the message; once it is
  // checkpointed, the file goes back to this size instead of keeping the largest it ever was.
  exec("PRAGMA journal_size_limit=4194304");
  // Debian builds SQLite with SQLITE_SECURE_DELETE, which overwrites every deleted page: deleting
  // a test of 30 MB of messages then writes 30 MB to the log, the one write a nearly full disk
  // has no room for (app/disk_guard.hpp). FAST zeroes only what costs no extra I/O.
  exec("PRAGMA secure_delete=FAST");
  exec("PRAGMA foreign_keys=ON");
  migrate(std::min(version, latest_version));
}

sqlite_store::~sqlite_store() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

void sqlite_store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw store_error("sqlite: " + msg);
  }
}

int sqlite_store::schema_version() {
  statement s(*this, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.integer(0));
}

void sqlite_store::migrate(int target) {
  constexpr int latest = latest_version;
  // BEGIN IMMEDIATE so that two processes opening a new file do not both migrate it.
  exec("BEGIN IMMEDIATE");
  try {
    int version = schema_version();
    if (version > latest) {
      throw store_error("database schema version " + std::to_string(version) +
                        " is newer than this mxlens understands (" + std::to_string(latest) + ")");
    }
    for (int v = version; v < target; ++v) {
      exec(migrations[v]);
      exec(("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

bool sqlite_store::create_test(const core::test_info& t) {
  statement s(*this,
              "INSERT OR IGNORE INTO tests(id, address, created_at, expires_at, label, profile, "
              "bulk, expect_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, t.id).bind(2, t.address).bind(3, t.created_at).bind(4, t.expires_at);
  s.bind(5, t.label).bind(6, t.profile).bind(7, static_cast<std::int64_t>(t.bulk));
  s.bind(8, boost::json::serialize(core::string_array(t.expect_from)));
  s.step();
  return sqlite3_changes(db_) == 1;
}

std::optional<core::test_info> sqlite_store::find_test(const std::string& id) {
  statement s(*this,
              "SELECT id, address, created_at, expires_at, label, profile, bulk, expect_from "
              "FROM tests WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  core::test_info t{s.text(0), s.text(1), s.integer(2),      s.integer(3),
                    s.text(4), s.text(5), s.integer(6) != 0, {}};
  if (auto prefixes = core::read_json<std::vector<std::string>>(s.text(7)))
    t.expect_from = std::move(*prefixes);
  return t;
}

bool sqlite_store::delete_test(const std::string& id) {
  exec("SAVEPOINT delete_test");
  try {
    statement keep(*this,
                   "INSERT OR REPLACE INTO deleted_tests(id, until) "
                   "SELECT id, expires_at FROM tests WHERE id = ?");
    keep.bind(1, id);
    keep.step();
    statement s(*this, "DELETE FROM tests WHERE id = ?");
    s.bind(1, id);
    s.step();
    const bool deleted = sqlite3_changes(db_) == 1;
    exec("RELEASE delete_test");
    return deleted;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK TO delete_test; RELEASE delete_test", nullptr, nullptr, nullptr);
    throw;
  }
}

bool sqlite_store::was_deleted(const std::string& id, core::unix_ms now) {
  statement s(*this, "SELECT 1 FROM deleted_tests WHERE id = ? AND until > ?");
  s.bind(1, id).bind(2, now);
  return s.step();
}

// A report, its listing line and its share of the per-source totals; a delivery whose report is
// stored already (or that is gone) is left as it is, so that nothing is counted twice. An empty
// `json` stands for its message's report (migration 8).
void sqlite_store::store_report(const analysis_update& a) {
  statement report(*this,
                   "INSERT OR IGNORE INTO reports(delivery_id, analysis) "
                   "SELECT id, ?3 FROM deliveries WHERE test_id = ?1 AND n = ?2");
  report.bind(1, a.test_id).bind(2, a.number).bind(3, a.json);
  report.step();
  if (sqlite3_changes(db_) != 1) return;
  const auto& l = a.line;
  statement line(
      *this,
      "INSERT INTO report_lines(test_id, n, received_at, client_ip, mail_from, tls_version, "
      "score, disposition) VALUES (?,?,?,?,?,?,?,?)");
  line.bind(1, a.test_id).bind(2, a.number).bind(3, l.received_at).bind(4, l.client_ip);
  line.bind(5, l.mail_from)
      .bind(6, l.tls_version)
      .bind(7, l.score_json)
      .bind(8, l.disposition_json);
  line.step();
  statement total(
      *this,
      "INSERT INTO source_totals(test_id, client_ip, tls_version, tls_cipher, first_delivery, "
      "deliveries, spf_pass, dkim_pass, dmarc_pass, failed_handshakes) "
      "VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9) "
      "ON CONFLICT(test_id, client_ip, tls_version, tls_cipher) DO UPDATE SET "
      "first_delivery = MIN(first_delivery, excluded.first_delivery), "
      "deliveries = deliveries + 1, spf_pass = spf_pass + excluded.spf_pass, "
      "dkim_pass = dkim_pass + excluded.dkim_pass, "
      "dmarc_pass = dmarc_pass + excluded.dmarc_pass, "
      "failed_handshakes = failed_handshakes + excluded.failed_handshakes");
  total.bind(1, a.test_id).bind(2, l.client_ip).bind(3, l.tls_version.value_or(""));
  total.bind(4, l.tls_version ? l.tls_cipher.value_or("") : std::string());
  total.bind(5, a.number).bind(6, l.spf_pass).bind(7, l.dkim_pass).bind(8, l.dmarc_pass);
  total.bind(9, l.failed_handshakes);
  total.step();
}

// The message's bytes once, with the report `compose` makes of the rows' numbers, then a row
// for each test that exists (number 0 for one that does not: a test deleted since its RCPT was
// accepted; the rest of the batch is unaffected). The message is written whole, once: a row that
// is written and then updated is written twice, and its first copy stays in the file as free
// pages.
std::optional<composed_report> sqlite_store::store_message(const core::delivery& d,
                                                           const std::vector<std::string>& tests,
                                                           std::vector<std::int64_t>& numbers,
                                                           const report_composer* compose) {
  statement exists(*this, "SELECT 1 FROM tests WHERE id = ?");
  statement next(*this, "SELECT COALESCE(MAX(n), 0) + 1 FROM deliveries WHERE test_id = ?");
  numbers.assign(tests.size(), 0);
  for (std::size_t i = 0; i < tests.size(); ++i) {
    exists.bind(1, tests[i]);
    const bool present = exists.step();
    exists.reset();
    if (!present) continue;
    next.bind(1, tests[i]);
    next.step();
    numbers[i] = next.integer(0);
    next.reset();
  }
  if (std::all_of(numbers.begin(), numbers.end(), [](auto n) { return n == 0; })) return {};

  std::optional<composed_report> report;
  if (compose && *compose) report = (*compose)(numbers);
  statement message(*this, "INSERT INTO messages(raw, analysis) VALUES (?, ?)");
  message.bind_blob(1, d.raw);
  if (report) {
    message.bind(2, report->json);
  } else {
    message.bind(2, std::optional<std::string>());  // NULL
  }
  message.step();
  const std::int64_t message_id = sqlite3_last_insert_rowid(db_);
  if (report) std::string().swap(report->json);  // stored; each row's report reads it there

  statement row(*this,
                "INSERT INTO deliveries(test_id, n, received_at, session_id, client_ip, mail_from, "
                "size, tls_version, facts, raw, message_id) VALUES (?,?,?,?,?,?,?,?,?,x'',?)");
  auto facts = core::delivery_facts_json(d);  // each row's carry its test and number
  for (std::size_t i = 0; i < tests.size(); ++i) {
    if (numbers[i] == 0) continue;
    facts.as_object()["test_id"] = tests[i];
    facts.as_object()["delivery"] = numbers[i];
    row.bind(1, tests[i]).bind(2, numbers[i]).bind(3, d.received_at).bind(4, d.session_id);
    row.bind(5, d.connection.client_ip).bind(6, d.envelope.mail_from);
    row.bind(7, static_cast<std::int64_t>(d.raw.size())).bind(8, d.tls.version);
    row.bind(9, boost::json::serialize(facts)).bind(10, message_id);
    row.step();
    row.reset();
  }
  return report;
}

void sqlite_store::commit(batch& b) {
  statement(*this, "BEGIN IMMEDIATE").step();
  try {
    for (auto& m : b.messages) {
      // One report for all the message's rows, kept once, with the message: each row's is empty.
      auto report = store_message(m.delivery, m.test_ids, m.numbers, &m.compose);
      if (!report) continue;
      for (std::size_t i = 0; i < m.numbers.size(); ++i) {
        if (m.numbers[i] == 0) continue;
        analysis_update u{m.test_ids[i], m.numbers[i], std::string(), report->line};
        u.line.number = m.numbers[i];
        store_report(u);
      }
    }
    for (auto& d : b.deliveries) {
      std::vector<std::int64_t> number;
      store_message(d, {d.test_id}, number, nullptr);
      d.number = number.front();
    }
    for (const auto& a : b.analyses) store_report(a);
    statement count(*this,
                    "INSERT INTO session_counts(client_ip, minute, connections, refused) "
                    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(client_ip, minute) DO UPDATE SET "
                    "connections = connections + ?3, refused = refused + ?4");
    for (const auto& c : b.session_counts) {
      count.bind(1, c.client_ip).bind(2, c.minute).bind(3, c.connections).bind(4, c.refused);
      count.step();
      count.reset();
    }
    statement ses(*this,
                  "INSERT OR REPLACE INTO sessions(id, started_at, ended_at, client_ip, outcome, "
                  "tls_version, failed_handshakes, messages, facts) VALUES (?,?,?,?,?,?,?,?,?)");
    for (const auto& r : b.sessions) {
      auto facts = boost::json::serialize(core::to_json(r));
      ses.bind(1, r.id).bind(2, r.connection.started_at).bind(3, r.ended_at);
      ses.bind(4, r.connection.client_ip).bind(5, r.outcome).bind(6, r.tls.version);
      ses.bind(7, static_cast<std::int64_t>(r.tls.failed_handshakes.size()));
      ses.bind(8, static_cast<std::int64_t>(r.messages)).bind(9, facts);
      ses.step();
      ses.reset();
    }
    statement(*this, "COMMIT").step();
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    for (auto& m : b.messages) m.numbers.assign(m.test_ids.size(), 0);
    for (auto& d : b.deliveries) d.number = 0;
    throw;
  }
}

std::vector<core::delivery_summary> sqlite_store::deliveries(const std::string& test_id) {
  statement s(*this,
              "SELECT n, received_at, client_ip, mail_from, size, tls_version FROM deliveries "
              "WHERE test_id = ? ORDER BY n");
  s.bind(1, test_id);
  std::vector<core::delivery_summary> out;
  while (s.step()) {
    out.push_back({s.integer(0), s.integer(1), s.text(2), s.text(3),
                   static_cast<std::uint64_t>(s.integer(4)), s.optional_text(5)});
  }
  return out;
}

std::optional<stored_delivery> sqlite_store::delivery(const std::string& test_id,
                                                      std::int64_t number) {
  statement s(*this,
              "SELECT n, received_at, client_ip, mail_from, size, tls_version, facts, "
              "COALESCE(messages.raw, deliveries.raw), " REPORT_OF_ROW
              " "
              "FROM deliveries LEFT JOIN reports ON delivery_id = deliveries.id "
              "LEFT JOIN messages ON messages.id = deliveries.message_id "
              "WHERE test_id = ? AND n = ?");
  s.bind(1, test_id).bind(2, number);
  if (!s.step()) return std::nullopt;
  return stored_delivery{{s.integer(0), s.integer(1), s.text(2), s.text(3),
                          static_cast<std::uint64_t>(s.integer(4)), s.optional_text(5)},
                         s.text(6),
                         s.text(7),
                         s.optional_text(8),
                         test_id};
}

std::optional<std::uint64_t> sqlite_store::raw_size(const std::string& test_id,
                                                    std::int64_t number) {
  statement s(*this, "SELECT size FROM deliveries WHERE test_id = ? AND n = ?");
  s.bind(1, test_id).bind(2, number);
  if (!s.step()) return std::nullopt;
  return static_cast<std::uint64_t>(s.integer(0));
}

// Through SQLite's incremental BLOB I/O, which reads only the pages of the part asked for.
std::optional<std::string> sqlite_store::raw_part(const std::string& test_id, std::int64_t number,
                                                  std::uint64_t offset, std::size_t length) {
  statement s(*this, "SELECT message_id, id FROM deliveries WHERE test_id = ? AND n = ?");
  s.bind(1, test_id).bind(2, number);
  if (!s.step()) return std::nullopt;
  // Rows stored before schema 5 keep their own bytes.
  const bool shared = !s.is_null(0);
  const std::int64_t row = shared ? s.integer(0) : s.integer(1);
  s.reset();
  sqlite3_blob* blob = nullptr;
  if (sqlite3_blob_open(db_, "main", shared ? "messages" : "deliveries", "raw", row, 0, &blob) !=
      SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_blob_close(blob);
    throw store_error("sqlite blob: " + msg);
  }
  const auto size = static_cast<std::uint64_t>(sqlite3_blob_bytes(blob));
  std::string part(offset < size ? std::min<std::uint64_t>(length, size - offset) : 0, '\0');
  const int rc = part.empty() ? SQLITE_OK
                              : sqlite3_blob_read(blob, part.data(), static_cast<int>(part.size()),
                                                  static_cast<int>(offset));
  sqlite3_blob_close(blob);
  if (rc != SQLITE_OK) throw store_error(std::string("sqlite blob read: ") + sqlite3_errstr(rc));
  return part;
}

std::vector<stored_delivery> sqlite_store::unanalyzed(core::unix_ms received_before,
                                                      std::size_t limit) {
  statement s(*this,
              "SELECT n, received_at, client_ip, mail_from, size, tls_version, facts, "
              "COALESCE(messages.raw, deliveries.raw), test_id "
              "FROM deliveries LEFT JOIN reports ON delivery_id = deliveries.id "
              "LEFT JOIN messages ON messages.id = deliveries.message_id "
              "WHERE delivery_id IS NULL AND received_at < ? ORDER BY deliveries.id LIMIT ?");
  s.bind(1, received_before).bind(2, static_cast<std::int64_t>(limit));
  std::vector<stored_delivery> out;
  while (s.step()) {
    out.push_back({{s.integer(0), s.integer(1), s.text(2), s.text(3),
                    static_cast<std::uint64_t>(s.integer(4)), s.optional_text(5)},
                   s.text(6),
                   s.text(7),
                   std::nullopt,
                   s.text(8)});
  }
  return out;
}

std::vector<delivery_record> sqlite_store::delivery_records(const std::string& test_id,
                                                            std::int64_t after, std::size_t limit) {
  statement s(*this, "SELECT n, facts, " REPORT_OF_ROW
                     " FROM deliveries "
                     "LEFT JOIN reports ON delivery_id = deliveries.id "
                     "LEFT JOIN messages ON messages.id = deliveries.message_id "
                     "WHERE test_id = ? AND n > ? ORDER BY n LIMIT ?");
  s.bind(1, test_id).bind(2, after).bind(3, static_cast<std::int64_t>(limit));
  std::vector<delivery_record> out;
  while (s.step()) out.push_back({s.integer(0), s.text(1), s.optional_text(2)});
  return out;
}

std::vector<core::report_line> sqlite_store::report_lines(const std::string& test_id,
                                                          const line_page& page) {
  const auto limit = static_cast<std::int64_t>(page.limit);
  auto read = [&](statement& s) {
    std::vector<core::report_line> out;
    while (s.step()) {
      core::report_line l;
      l.number = s.integer(0);
      l.received_at = s.text(1);
      l.client_ip = s.text(2);
      l.mail_from = s.text(3);
      l.tls_version = s.optional_text(4);
      l.score_json = s.text(5);
      l.disposition_json = s.text(6);
      out.push_back(std::move(l));
    }
    return out;
  };
  if (page.descending) {
    statement s(*this,
                "SELECT n, received_at, client_ip, mail_from, tls_version, score, disposition "
                "FROM report_lines WHERE test_id = ? AND n < ? ORDER BY n DESC LIMIT ?");
    s.bind(1, test_id).bind(2, page.before.value_or(INT64_MAX)).bind(3, limit);
    return read(s);
  }
  statement s(*this,
              "SELECT n, received_at, client_ip, mail_from, tls_version, score, disposition "
              "FROM report_lines WHERE test_id = ? AND n > ? ORDER BY n LIMIT ?");
  s.bind(1, test_id).bind(2, page.after).bind(3, limit);
  return read(s);
}

std::vector<source_total> sqlite_store::source_totals(const std::string& test_id) {
  statement s(*this,
              "SELECT client_ip, tls_version, tls_cipher, first_delivery, deliveries, spf_pass, "
              "dkim_pass, dmarc_pass, failed_handshakes FROM source_totals WHERE test_id = ?");
  s.bind(1, test_id);
  std::vector<source_total> out;
  while (s.step()) {
    out.push_back({s.text(0), s.nonempty_text(1), s.nonempty_text(2), s.integer(3), s.integer(4),
                   s.integer(5), s.integer(6), s.integer(7), s.integer(8)});
  }
  return out;
}

std::vector<std::string> sqlite_store::sessions_with_failed_handshakes(const std::string& client_ip,
                                                                       core::unix_ms since,
                                                                       std::size_t limit) {
  statement s(*this,
              "SELECT facts FROM sessions WHERE client_ip = ? AND started_at >= ? AND "
              "failed_handshakes > 0 ORDER BY started_at DESC LIMIT ?");
  s.bind(1, client_ip).bind(2, since).bind(3, static_cast<std::int64_t>(limit));
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<std::string> sqlite_store::sessions(std::size_t limit,
                                                const std::optional<std::string>& client_ip) {
  statement s(*this,
              "SELECT facts FROM sessions WHERE (?1 IS NULL OR client_ip = ?1) "
              "ORDER BY started_at DESC, rowid DESC LIMIT ?2");
  s.bind(1, client_ip).bind(2, static_cast<std::int64_t>(limit));
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<std::string> sqlite_store::sessions_since(core::unix_ms since, std::size_t limit) {
  statement s(*this,
              "SELECT facts FROM sessions WHERE started_at >= ? "
              "ORDER BY started_at DESC, rowid DESC LIMIT ?");
  s.bind(1, since).bind(2, static_cast<std::int64_t>(limit));
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<core::session_count> sqlite_store::session_counts(
    core::unix_ms since, std::size_t limit, const std::optional<std::string>& client_ip) {
  statement s(*this,
              "SELECT client_ip, minute, connections, refused FROM session_counts "
              "WHERE minute >= ?1 AND (?2 IS NULL OR client_ip = ?2) "
              "ORDER BY minute DESC, client_ip LIMIT ?3");
  s.bind(1, since).bind(2, client_ip).bind(3, static_cast<std::int64_t>(limit));
  std::vector<core::session_count> out;
  while (s.step()) out.push_back({s.text(0), s.integer(1), s.integer(2), s.integer(3)});
  return out;
}

purge_counts sqlite_store::purge(core::unix_ms now, core::unix_ms sessions_before) {
  purge_counts counts;
  exec("BEGIN IMMEDIATE");
  try {
    statement d(*this,
                "DELETE FROM deliveries WHERE test_id IN "
                "(SELECT id FROM tests WHERE expires_at <= ?)");
    d.bind(1, now);
    d.step();
    counts.deliveries = sqlite3_changes(db_);
    statement t(*this, "DELETE FROM tests WHERE expires_at <= ?");
    t.bind(1, now);
    t.step();
    counts.tests = sqlite3_changes(db_);
    statement gone(*this, "DELETE FROM deleted_tests WHERE until <= ?");
    gone.bind(1, now);
    gone.step();
    counts.sessions = remove_sessions_before(sessions_before);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return counts;
}

std::int64_t sqlite_store::remove_sessions_before(core::unix_ms before) {
  statement s(*this, "DELETE FROM sessions WHERE started_at < ?");
  s.bind(1, before);
  s.step();
  const std::int64_t removed = sqlite3_changes(db_);
  statement tallies(*this, "DELETE FROM session_counts WHERE minute < ?");
  tallies.bind(1, before);
  tallies.step();
  return removed;
}

std::uint64_t sqlite_store::used_bytes() {
  statement pages(*this, "PRAGMA page_count");
  statement free_pages(*this, "PRAGMA freelist_count");
  statement size(*this, "PRAGMA page_size");
  pages.step();
  free_pages.step();
  size.step();
  const auto used = std::max<std::int64_t>(0, pages.integer(0) - free_pages.integer(0));
  return static_cast<std::uint64_t>(used) * static_cast<std::uint64_t>(size.integer(0));
}

namespace {
// Tests and sessions removed at once when trimming the store to its size: each batch is one
// short transaction, so that deliveries are not held up behind a long one.
constexpr std::int64_t tests_per_trim = 64;
// What a delivery's rows take besides its message, facts and report: its listing line, its
// share of the totals, the indexes; about.
constexpr std::int64_t row_estimate = 1'000;
constexpr std::int64_t sessions_per_trim = 2000;
}  // namespace

purge_counts sqlite_store::trim(std::uint64_t most, std::uint64_t target) {
  purge_counts counts;
  if (used_bytes() <= most) return counts;
  while (used_bytes() > target) {
    // The oldest test's creation and the oldest session's (or count's) start, read and reset
    // before the batch's transaction.
    std::optional<std::int64_t> first_test;
    std::optional<std::int64_t> first_session;
    {
      statement oldest(*this,
                       "WITH o(s, c) AS (SELECT (SELECT min(started_at) FROM sessions), "
                       "(SELECT min(minute) FROM session_counts)) "
                       "SELECT (SELECT min(created_at) FROM tests), "
                       "min(coalesce(s, c), coalesce(c, s)) FROM o");
      oldest.step();
      if (!oldest.is_null(0)) first_test = oldest.integer(0);
      if (!oldest.is_null(1)) first_session = oldest.integer(1);
    }
    if (!first_test && !first_session) break;  // what is left is not ours to remove
    const bool tests_first = first_test && (!first_session || *first_test <= *first_session);
    exec("BEGIN IMMEDIATE");
    try {
      if (tests_first) {
        // The oldest tests, as many as take about the excess (their messages, facts and
        // reports), at least one.
        const auto excess = static_cast<std::int64_t>(used_bytes() - target);
        std::vector<std::string> ids;
        {
          statement oldest(
              *this,
              "SELECT id, (SELECT coalesce(sum(coalesce(length(m.raw), length(d.raw)) + "
              "length(d.facts) + coalesce(length(m.analysis), 0) + "
              "coalesce(length(r.analysis), 0)), 0) + count(*) * ? "
              "FROM deliveries d LEFT JOIN messages m ON m.id = d.message_id "
              "LEFT JOIN reports r ON r.delivery_id = d.id WHERE d.test_id = tests.id) "
              "FROM tests ORDER BY created_at, id LIMIT ?");
          oldest.bind(1, row_estimate).bind(2, tests_per_trim);
          for (std::int64_t taken = 0; taken < excess && oldest.step();) {
            ids.push_back(oldest.text(0));
            taken += oldest.integer(1);
          }
        }
        for (const auto& id : ids) {
          statement d(*this, "DELETE FROM deliveries WHERE test_id = ?");
          d.bind(1, id);
          d.step();
          counts.deliveries += sqlite3_changes(db_);
          statement t(*this, "DELETE FROM tests WHERE id = ?");
          t.bind(1, id);
          t.step();
          counts.tests += sqlite3_changes(db_);
        }
      } else {
        // Sessions (and counts) up to the batch's newest start; all of them if fewer are left.
        std::int64_t until = INT64_MAX - 1;
        {
          statement last(*this,
                         "SELECT started_at FROM sessions ORDER BY started_at LIMIT 1 OFFSET ?");
          last.bind(1, sessions_per_trim - 1);
          if (last.step()) until = last.integer(0);
        }
        counts.sessions += remove_sessions_before(until + 1);
      }
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  return counts;
}

std::uint64_t sqlite_store::reusable_bytes() {
  statement pages(*this, "PRAGMA freelist_count");
  statement size(*this, "PRAGMA page_size");
  pages.step();
  size.step();
  return static_cast<std::uint64_t>(pages.integer(0)) * static_cast<std::uint64_t>(size.integer(0));
}

std::optional<std::string> sqlite_store::meta(const std::string& key) {
  statement s(*this, "SELECT value FROM meta WHERE key = ?");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void sqlite_store::set_meta(const std::string& key, const std::string& value) {
  statement s(*this, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
  s.bind(1, key).bind(2, value);
  s.step();
}

}  // namespace mxlens::storage
