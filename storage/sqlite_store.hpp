// The embedded store: one SQLite file in WAL mode, with versioned schema migrations.
// synchronous=FULL: a commit that returned has reached the disk, which is what lets the receiver
// answer 250 only afterwards. Deliveries share commits through commit_queue.
#pragma once

#include <filesystem>
#include <memory>
#include <unordered_map>

#include "storage/store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mxlens::storage {

// How long a connection waits for another connection's write lock before giving up.
inline constexpr int busy_timeout_ms = 10'000;

class sqlite_store final : public store {
 public:
  // Opens (creating if needed) the database and applies pending migrations.
  explicit sqlite_store(const std::filesystem::path& file);
  // Migrates no further than `version`: for testing migrations from an older schema.
  sqlite_store(const std::filesystem::path& file, int version);
  ~sqlite_store() override;
  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  bool create_test(const core::test_info& test) override;
  std::optional<core::test_info> find_test(const std::string& id) override;
  bool delete_test(const std::string& id) override;
  bool was_deleted(const std::string& id, core::unix_ms now) override;
  void commit(batch& b) override;
  std::vector<core::delivery_summary> deliveries(const std::string& test_id) override;
  std::optional<stored_delivery> delivery(const std::string& test_id, std::int64_t number) override;
  std::optional<std::uint64_t> raw_size(const std::string& test_id, std::int64_t number) override;
  std::optional<std::string> raw_part(const std::string& test_id, std::int64_t number,
                                      std::uint64_t offset, std::size_t length) override;
  std::vector<stored_delivery> unanalyzed(core::unix_ms received_before,
                                          std::size_t limit) override;
  std::vector<delivery_record> delivery_records(const std::string& test_id, std::int64_t after,
                                                std::size_t limit) override;
  std::vector<core::report_line> report_lines(const std::string& test_id,
                                              const line_page& page) override;
  std::vector<source_total> source_totals(const std::string& test_id) override;
  std::vector<std::string> sessions_with_failed_handshakes(const std::string& client_ip,
                                                           core::unix_ms since,
                                                           std::size_t limit) override;
  std::vector<std::string> sessions_since(core::unix_ms since, std::size_t limit) override;
  std::vector<std::string> sessions(std::size_t limit,
                                    const std::optional<std::string>& client_ip) override;
  std::vector<core::session_count> session_counts(
      core::unix_ms since, std::size_t limit, const std::optional<std::string>& client_ip) override;
  std::uint64_t reusable_bytes() override;
  std::uint64_t used_bytes() override;
  purge_counts trim(std::uint64_t most, std::uint64_t target) override;
  purge_counts purge(core::unix_ms now, core::unix_ms sessions_before) override;
  std::optional<std::string> meta(const std::string& key) override;
  void set_meta(const std::string& key, const std::string& value) override;

  // The schema version the file is at (PRAGMA user_version).
  int schema_version();

 private:
  class statement;
  void exec(const char* sql);
  void migrate(int target);
  void store_report(const analysis_update& a);
  // Removes the sessions started before `before`, and the counts of minutes before it; how many
  // sessions went.
  std::int64_t remove_sessions_before(core::unix_ms before);
  using report_composer = std::function<composed_report(const std::vector<std::int64_t>&)>;
  // The report composed for the rows (its JSON already stored), or none when no test of the
  // message exists or there is nothing to compose.
  std::optional<composed_report> store_message(const core::delivery& d,
                                               const std::vector<std::string>& tests,
                                               std::vector<std::int64_t>& numbers,
                                               const report_composer* compose);

  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

}  // namespace mxlens::storage
