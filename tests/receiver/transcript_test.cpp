#include "receiver/transcript.hpp"

#include <catch2/catch.hpp>
#include <numeric>
#include <string>

#include "receiver/limits.hpp"

using namespace mxlens;
using receiver::transcript;

namespace {

std::vector<std::string> texts(const std::vector<core::transcript_line>& lines) {
  std::vector<std::string> out;
  out.reserve(lines.size());
  for (const auto& l : lines) out.push_back(l.line);
  return out;
}

std::size_t stored(const std::vector<core::transcript_line>& lines) {
  return std::accumulate(
      lines.begin(), lines.end(), std::size_t{0},
      [](std::size_t n, const auto& l) { return n + receiver::stored_size(l.line); });
}

// Adds lines of `n` octets until `count` are added, at increasing times.
void flood(transcript& t, std::size_t count, std::size_t n, double& clock) {
  for (std::size_t i = 0; i < count; ++i)
    t.add(clock += 1, core::direction::client, "NOOP " + std::string(n, 'x'));
}

}  // namespace

TEST_CASE("a line is counted as JSON stores it", "[receiver]") {
  CHECK(receiver::stored_size("") == receiver::transcript_line_overhead);
  CHECK(receiver::stored_size("a\"\\\t\x1b") ==
        receiver::transcript_line_overhead + 1 + 2 + 2 + 2 + 6);
}

TEST_CASE("a delivery's transcript is the prologue and its own transaction", "[receiver]") {
  transcript t;
  double clock = 0;
  const auto add = [&](const char* line) { t.add(clock += 1, core::direction::client, line); };
  add("220 hello");
  add("EHLO a.example");
  add("MAIL FROM:<bad");  // refused: still the prologue
  add("501 5.1.7 bad");
  add("MAIL FROM:<a@b.example>");
  t.begin_transaction();
  add("250 OK");
  add("RCPT TO:<c@d.example>");
  add("<10 bytes>");
  CHECK(texts(t.take_delivery(clock)) ==
        std::vector<std::string>{"220 hello", "EHLO a.example", "MAIL FROM:<bad", "501 5.1.7 bad",
                                 "MAIL FROM:<a@b.example>", "250 OK", "RCPT TO:<c@d.example>",
                                 "<10 bytes>"});
  t.end_transaction();
  add("RSET");  // between transactions: in the session only
  add("MAIL FROM:<e@b.example>");
  t.begin_transaction();
  add("<20 bytes>");
  CHECK(texts(t.take_delivery(clock)) ==
        std::vector<std::string>{"220 hello", "EHLO a.example", "MAIL FROM:<bad", "501 5.1.7 bad",
                                 "MAIL FROM:<e@b.example>", "<20 bytes>"});
  t.end_transaction();
  CHECK(t.take_session(clock).size() == 11);
}

TEST_CASE("a session keeps 64 KiB of transcript, then counts the lines", "[receiver]") {
  transcript t;
  double clock = 0;
  flood(t, 200, 1000, clock);
  auto lines = t.take_session(clock);
  REQUIRE(lines.size() > 1);
  const auto kept = lines.size() - 1;
  CHECK(lines.back().line == "(" + std::to_string(200 - kept) + " more transcript lines not kept)");
  lines.pop_back();
  CHECK(stored(lines) <= receiver::max_transcript_bytes);
  CHECK(stored(lines) + receiver::stored_size(std::string(1005, 'x')) >
        receiver::max_transcript_bytes);
  // Short lines are bounded by their count as stored, not only by their text.
  transcript shorts;
  flood(shorts, 4000, 1, clock);
  auto few = shorts.take_session(clock);
  few.pop_back();
  CHECK(stored(few) <= receiver::max_transcript_bytes);
  CHECK(few.size() < 4000);
}

TEST_CASE("a transaction after the session's budget is spent is whole in its delivery",
          "[receiver]") {
  transcript t;
  double clock = 0;
  t.add(clock += 1, core::direction::server, "220 hello");
  t.add(clock += 1, core::direction::client, "MAIL FROM:<a@b.example>");
  t.begin_transaction();
  flood(t, 100, 1000, clock);  // a long first transaction fills the session's transcript
  t.take_delivery(clock);
  t.end_transaction();
  t.add(clock += 1, core::direction::client, "MAIL FROM:<c@b.example>");
  t.begin_transaction();
  t.add(clock += 1, core::direction::server, "250 OK");
  t.add(clock += 1, core::direction::client, "<5 bytes>");
  CHECK(texts(t.take_delivery(clock)) ==
        std::vector<std::string>{"220 hello", "MAIL FROM:<c@b.example>", "250 OK", "<5 bytes>"});
  t.end_transaction();
  const auto session = t.take_session(clock);
  CHECK(session.back().line.find("more transcript lines not kept") != std::string::npos);
}

TEST_CASE("a long prologue takes at most half of a delivery's budget", "[receiver]") {
  transcript t;
  double clock = 0;
  flood(t, 100, 1000, clock);
  t.add(clock += 1, core::direction::client, "MAIL FROM:<a@b.example>");
  t.begin_transaction();
  flood(t, 100, 1000, clock);
  auto lines = t.take_delivery(clock);
  CHECK(stored(lines) <= receiver::max_transcript_bytes + 2 * receiver::stored_size("(100 more "
                                                                                    "transcript "
                                                                                    "lines not "
                                                                                    "kept)"));
  const auto mail = std::find_if(lines.begin(), lines.end(),
                                 [](const auto& l) { return l.line.rfind("MAIL", 0) == 0; });
  REQUIRE(mail != lines.end());
  REQUIRE(mail != lines.begin());
  CHECK(std::prev(mail)->line.find("more transcript lines not kept") != std::string::npos);
  CHECK(stored({lines.begin(), std::prev(mail)}) <= receiver::max_transcript_bytes / 2);
  // The transaction has the rest of the budget, then says how many of its lines it lost.
  CHECK(std::distance(mail, lines.end()) > 30);
  CHECK(lines.back().line.find("more transcript lines not kept") != std::string::npos);
  // The times stay in order.
  CHECK(std::is_sorted(lines.begin(), lines.end(),
                       [](const auto& a, const auto& b) { return a.t_ms < b.t_ms; }));
}
