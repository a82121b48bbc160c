#include "storage/sqlite_store.hpp"

#include <sqlite3.h>

#include <boost/json/serialize.hpp>

#include "core/json.hpp"

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
};

}  // namespace

// A prepared statement that finalises itself; binds by position, starting at 1.
class sqlite_store::statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw store_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
  }
  ~statement() { sqlite3_finalize(stmt_); }
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
  statement& bind(int i, const std::optional<std::string>& v) {
    if (v) return bind(i, *v);
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
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

sqlite_store::sqlite_store(const std::filesystem::path& file) {
  int rc = sqlite3_open_v2(file.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw store_error("cannot open " + file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec("PRAGMA foreign_keys=ON");
  migrate();
}

sqlite_store::~sqlite_store() { sqlite3_close(db_); }

void sqlite_store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw store_error("sqlite: " + msg);
  }
}

int sqlite_store::schema_version() {
  statement s(db_, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.integer(0));
}

void sqlite_store::migrate() {
  constexpr int latest = static_cast<int>(std::size(migrations));
  // BEGIN IMMEDIATE so that two processes opening a new file do not both migrate it.
  exec("BEGIN IMMEDIATE");
  try {
    int version = schema_version();
    if (version > latest) {
      throw store_error("database schema version " + std::to_string(version) +
                        " is newer than this mxlens understands (" + std::to_string(latest) + ")");
    }
    for (int v = version; v < latest; ++v) {
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
  statement s(db_,
              "INSERT OR IGNORE INTO tests(id, address, created_at, expires_at, label, profile, bulk) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, t.id).bind(2, t.address).bind(3, t.created_at).bind(4, t.expires_at);
  s.bind(5, t.label).bind(6, t.profile).bind(7, static_cast<std::int64_t>(t.bulk));
  s.step();
  return sqlite3_changes(db_) == 1;
}

std::optional<core::test_info> sqlite_store::find_test(const std::string& id) {
  statement s(db_,
              "SELECT id, address, created_at, expires_at, label, profile, bulk FROM tests WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return core::test_info{s.text(0), s.text(1), s.integer(2), s.integer(3), s.text(4), s.text(5),
                         s.integer(6) != 0};
}

bool sqlite_store::delete_test(const std::string& id) {
  statement s(db_, "DELETE FROM tests WHERE id = ?");
  s.bind(1, id);
  s.step();
  return sqlite3_changes(db_) == 1;
}

void sqlite_store::commit(batch& b) {
  exec("BEGIN IMMEDIATE");
  try {
    statement exists(db_, "SELECT 1 FROM tests WHERE id = ?");
    statement next(db_, "SELECT COALESCE(MAX(n), 0) + 1 FROM deliveries WHERE test_id = ?");
    statement ins(db_,
                  "INSERT INTO deliveries(test_id, n, received_at, session_id, client_ip, "
                  "mail_from, size, tls_version, facts, raw) VALUES (?,?,?,?,?,?,?,?,?,?)");
    for (auto& d : b.deliveries) {
      // A test deleted since its RCPT was accepted: the delivery is not stored (number 0), and
      // the rest of the batch is unaffected.
      exists.bind(1, d.test_id);
      bool present = exists.step();
      exists.reset();
      if (!present) {
        d.number = 0;
        continue;
      }
      next.bind(1, d.test_id);
      next.step();
      d.number = next.integer(0);
      next.reset();
      auto facts = boost::json::serialize(core::delivery_facts_json(d));
      ins.bind(1, d.test_id).bind(2, d.number).bind(3, d.received_at).bind(4, d.session_id);
      ins.bind(5, d.connection.client_ip).bind(6, d.envelope.mail_from);
      ins.bind(7, static_cast<std::int64_t>(d.raw.size())).bind(8, d.tls.version);
      ins.bind(9, facts).bind_blob(10, d.raw);
      ins.step();
      ins.reset();
    }
    statement upd(db_, "UPDATE deliveries SET analysis = ? WHERE test_id = ? AND n = ?");
    for (const auto& a : b.analyses) {
      upd.bind(1, a.json).bind(2, a.test_id).bind(3, a.number);
      upd.step();
      upd.reset();
    }
    statement ses(db_,
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
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    for (auto& d : b.deliveries) d.number = 0;
    throw;
  }
}

std::vector<core::delivery_summary> sqlite_store::deliveries(const std::string& test_id) {
  statement s(db_,
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
  statement s(db_,
              "SELECT n, received_at, client_ip, mail_from, size, tls_version, facts, raw, "
              "analysis FROM deliveries WHERE test_id = ? AND n = ?");
  s.bind(1, test_id).bind(2, number);
  if (!s.step()) return std::nullopt;
  return stored_delivery{{s.integer(0), s.integer(1), s.text(2), s.text(3),
                          static_cast<std::uint64_t>(s.integer(4)), s.optional_text(5)},
                         s.text(6),
                         s.text(7),
                         s.optional_text(8),
                         test_id};
}

std::vector<stored_delivery> sqlite_store::unanalyzed(core::unix_ms received_before,
                                                      std::size_t limit) {
  statement s(db_,
              "SELECT n, received_at, client_ip, mail_from, size, tls_version, facts, raw, test_id "
              "FROM deliveries WHERE analysis IS NULL AND received_at < ? ORDER BY id LIMIT ?");
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
  statement s(db_,
              "SELECT n, facts, analysis FROM deliveries WHERE test_id = ? AND n > ? ORDER BY n "
              "LIMIT ?");
  s.bind(1, test_id).bind(2, after).bind(3, static_cast<std::int64_t>(limit));
  std::vector<delivery_record> out;
  while (s.step()) out.push_back({s.integer(0), s.text(1), s.optional_text(2)});
  return out;
}

std::vector<std::string> sqlite_store::sessions_with_failed_handshakes(const std::string& client_ip,
                                                                       core::unix_ms since,
                                                                       std::size_t limit) {
  statement s(db_,
              "SELECT facts FROM sessions WHERE client_ip = ? AND started_at >= ? AND "
              "failed_handshakes > 0 ORDER BY started_at DESC LIMIT ?");
  s.bind(1, client_ip).bind(2, since).bind(3, static_cast<std::int64_t>(limit));
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<std::string> sqlite_store::sessions(std::size_t limit,
                                                const std::optional<std::string>& client_ip) {
  statement s(db_,
              "SELECT facts FROM sessions WHERE (?1 IS NULL OR client_ip = ?1) "
              "ORDER BY started_at DESC, rowid DESC LIMIT ?2");
  s.bind(1, client_ip).bind(2, static_cast<std::int64_t>(limit));
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

purge_counts sqlite_store::purge(core::unix_ms now, core::unix_ms sessions_before) {
  purge_counts counts;
  exec("BEGIN IMMEDIATE");
  try {
    statement d(db_,
                "DELETE FROM deliveries WHERE test_id IN "
                "(SELECT id FROM tests WHERE expires_at <= ?)");
    d.bind(1, now);
    d.step();
    counts.deliveries = sqlite3_changes(db_);
    statement t(db_, "DELETE FROM tests WHERE expires_at <= ?");
    t.bind(1, now);
    t.step();
    counts.tests = sqlite3_changes(db_);
    statement s(db_, "DELETE FROM sessions WHERE started_at < ?");
    s.bind(1, sessions_before);
    s.step();
    counts.sessions = sqlite3_changes(db_);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return counts;
}

std::optional<std::string> sqlite_store::meta(const std::string& key) {
  statement s(db_, "SELECT value FROM meta WHERE key = ?");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void sqlite_store::set_meta(const std::string& key, const std::string& value) {
  statement s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
  s.bind(1, key).bind(2, value);
  s.step();
}

}  // namespace mxlens::storage
