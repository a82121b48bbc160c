// The store: where tests, sessions and deliveries are kept. An interface, because a server
// database may take over from the embedded SQLite when several receivers share one domain.
// Implementations are used from one thread at a time; commit_queue serialises the writes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace mxlens::storage {

// An operational failure of the store (disk full, corrupt file, locked too long).
class store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A delivery as stored: its facts as JSON text and the raw message.
struct stored_delivery {
  core::delivery_summary summary;
  std::string facts_json;
  std::string raw;
  std::optional<std::string> analysis_json;  // null until the analysis is stored
  std::string test_id;
};

// A delivery's facts and analysis without its raw bytes, for listings and reports.
struct delivery_record {
  std::int64_t number = 0;
  std::string facts_json;
  std::optional<std::string> analysis_json;
};

// The analysis of a stored delivery (JSON text), stored after the delivery itself, with the
// delivery's listing line.
struct analysis_update {
  std::string test_id;
  std::int64_t number = 0;
  std::string json;
  core::report_line line;
};

// The analyzed deliveries of a test from one client IP with one TLS version and cipher (none for
// plaintext), counted as they are stored.
struct source_total {
  std::string client_ip;
  std::optional<std::string> tls_version;
  std::optional<std::string> tls_cipher;
  std::int64_t first_delivery = 0;  // the lowest delivery number counted here
  std::int64_t deliveries = 0;
  std::int64_t spf_pass = 0;
  std::int64_t dkim_pass = 0;
  std::int64_t dmarc_pass = 0;
  std::int64_t failed_handshakes = 0;
};

// Which lines of a test's listing to read.
struct line_page {
  std::int64_t after = 0;              // ascending, numbers above this
  std::optional<std::int64_t> before;  // descending, numbers below this (newest first)
  bool descending = false;
  std::size_t limit = 100;
};

struct purge_counts {
  std::int64_t tests = 0;
  std::int64_t deliveries = 0;
  std::int64_t sessions = 0;
};

// What each stored row of a message gets, made once the rows' numbers are known: its report (the
// analysis JSON with its disposition) and its listing line (whose number the store sets).
struct composed_report {
  std::string json;
  core::report_line line;
};

// One message received for one or more tests, stored with its reports in one transaction: the
// raw bytes once, a row per test that still exists, each row with the report `compose` makes.
struct message_delivery {
  core::delivery delivery;  // facts and raw bytes; its test_id and number are not used
  std::vector<std::string> test_ids;
  std::vector<std::int64_t> numbers;  // set on commit, one per test id; 0: the test is gone
  // Called inside the transaction with `numbers` when at least one row was stored.
  std::function<composed_report(const std::vector<std::int64_t>& numbers)> compose;
};

// Work for one transaction: everything in it is committed together or not at all.
struct batch {
  std::vector<message_delivery> messages;  // numbers are assigned on commit
  std::vector<core::delivery> deliveries;  // a message each, without a report; numbered too
  std::vector<core::session_record> sessions;
  std::vector<analysis_update> analyses;            // reports of rows stored before without one
  std::vector<core::session_count> session_counts;  // added to what is counted already
};

class store {
 public:
  virtual ~store() = default;

  // Inserts the test; false if a test with that id exists already.
  virtual bool create_test(const core::test_info& test) = 0;
  virtual std::optional<core::test_info> find_test(const std::string& id) = 0;
  // Deletes the test and its deliveries; its id is remembered until the test would have expired.
  virtual bool delete_test(const std::string& id) = 0;
  // Whether a test with this id was deleted and would not have expired by `now`.
  virtual bool was_deleted(const std::string& id, core::unix_ms now) = 0;

  // Commits the batch in one transaction and sets each delivery's number (0 for a delivery whose
  // test no longer exists, which is skipped). A test's deliveries are numbered 1, 2, … without
  // gaps: the event streams rely on it (webui::api::lines_after).
  virtual void commit(batch& b) = 0;

  virtual std::vector<core::delivery_summary> deliveries(const std::string& test_id) = 0;
  virtual std::optional<stored_delivery> delivery(const std::string& test_id,
                                                  std::int64_t number) = 0;
  // The size of a delivery's raw message; none if there is no such delivery.
  virtual std::optional<std::uint64_t> raw_size(const std::string& test_id,
                                                std::int64_t number) = 0;
  // Up to `length` octets of a delivery's raw message from `offset`, read without reading the
  // rest (a message can be 256 MiB); fewer at its end, none if the delivery is gone.
  virtual std::optional<std::string> raw_part(const std::string& test_id, std::int64_t number,
                                              std::uint64_t offset, std::size_t length) = 0;
  // Deliveries received before `received_before` and stored without their analysis (a previous
  // version stored a message before its report, and stopped between the two), oldest first,
  // with their raw bytes.
  virtual std::vector<stored_delivery> unanalyzed(core::unix_ms received_before,
                                                  std::size_t limit) = 0;
  // Deliveries numbered above `after`, in order, at most `limit`.
  virtual std::vector<delivery_record> delivery_records(const std::string& test_id,
                                                        std::int64_t after, std::size_t limit) = 0;
  // The listing lines of a test's analyzed deliveries.
  virtual std::vector<core::report_line> report_lines(const std::string& test_id,
                                                      const line_page& page) = 0;
  // The per-source totals of a test's analyzed deliveries, in no particular order.
  virtual std::vector<source_total> source_totals(const std::string& test_id) = 0;
  // Sessions from `client_ip` that started at or after `since` and had a failed TLS handshake,
  // newest first, as JSON text.
  virtual std::vector<std::string> sessions_with_failed_handshakes(const std::string& client_ip,
                                                                   core::unix_ms since,
                                                                   std::size_t limit) = 0;
  // The sessions that started at or after `since`, newest first, at most `limit`, as JSON text.
  virtual std::vector<std::string> sessions_since(core::unix_ms since, std::size_t limit) = 0;
  // The newest sessions first, as JSON text; optionally only those from one client IP.
  virtual std::vector<std::string> sessions(std::size_t limit,
                                            const std::optional<std::string>& client_ip) = 0;

  // The counts of sessions not stored one by one, from minutes at or after `since`, newest first;
  // optionally only those of one client IP.
  virtual std::vector<core::session_count> session_counts(
      core::unix_ms since, std::size_t limit, const std::optional<std::string>& client_ip) = 0;

  // Removes tests that expired by `now` with their deliveries, and sessions (and their counts)
  // older than `sessions_before`.
  virtual purge_counts purge(core::unix_ms now, core::unix_ms sessions_before) = 0;

  // Octets the store's rows take (its pages in use).
  virtual std::uint64_t used_bytes() = 0;
  // While the rows take more than `most` octets, removes the oldest of what is kept: tests (by
  // creation, with their deliveries) and sessions (with their counts), a batch at a time,
  // oldest first, until they take at most `target`.
  virtual purge_counts trim(std::uint64_t most, std::uint64_t target) = 0;

  // Octets the store's files hold free for reuse (pages of deleted rows), which new rows take
  // before the files grow.
  virtual std::uint64_t reusable_bytes() = 0;

  virtual std::optional<std::string> meta(const std::string& key) = 0;
  virtual void set_meta(const std::string& key, const std::string& value) = 0;
};

}  // namespace mxlens::storage
