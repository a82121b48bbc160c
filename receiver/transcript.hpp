// The transcript of one SMTP session, kept once and within a budget (receiver/limits.hpp): at most
// max_transcript_lines lines and max_transcript_bytes octets as stored; the lines after those are
// counted, not kept, and one last line says how many.
//
// A delivery's transcript is the session's prologue (its lines before the first MAIL) and that
// transaction, under the same budget, of which the prologue takes at most half. Both are slices
// of the session's one copy; only a transaction's lines that came after the session's budget was
// spent are kept beside it.
//
// Not here: time stamps and the SMTP state; the session says when a transaction begins and ends.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace mxlens::receiver {

// Octets a line takes once stored as JSON: its text escaped, and its time, direction and framing.
std::size_t stored_size(std::string_view line);

class transcript {
 public:
  // Records a line, cut to max_transcript_line octets.
  void add(double t_ms, core::direction dir, std::string_view line);

  // The line added last (a MAIL command) began a transaction: it and the lines after it belong to
  // the transaction until end_transaction(). The first one ends the prologue.
  void begin_transaction();
  void end_transaction();

  // The prologue and the current transaction, as its delivery records them; takes the
  // transaction's own lines, so call it once, before end_transaction().
  std::vector<core::transcript_line> take_delivery(double t_ms);

  // The session's lines, and a last line at `t_ms` if some were not kept; leaves it empty.
  std::vector<core::transcript_line> take_session(double t_ms);

 private:
  struct transaction {
    bool active = false;
    std::size_t first = 0;  // its first line in lines_; lines_.size() when none is there
    std::size_t lines = 0;  // kept, in lines_ and in overflow
    std::size_t bytes = 0;  // stored_size of those
    std::vector<core::transcript_line> overflow;  // kept after lines_ was full
    std::size_t dropped = 0;
  };
  // Keeps a transaction line that lines_ had no room for, if the delivery still has room.
  void overflow(core::transcript_line line, std::size_t size);

  std::vector<core::transcript_line> lines_;
  std::size_t bytes_ = 0;
  // Once a line is not kept, no later one is: lines_ is always a beginning of the session.
  bool full_ = false;
  std::size_t dropped_ = 0;
  bool last_kept_ = false;
  std::optional<core::transcript_line> last_dropped_;  // the line added last, when not kept

  bool in_prologue_ = true;
  std::size_t prologue_end_ = 0;
  std::size_t prologue_bytes_ = 0;
  std::size_t prologue_dropped_ = 0;
  transaction tx_;
};

}  // namespace mxlens::receiver
