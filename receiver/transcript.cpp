#include "receiver/transcript.hpp"

#include <cstddef>
#include <iterator>
#include <string>

#include "receiver/limits.hpp"

namespace mxlens::receiver {

namespace {

// A delivery keeps at most this much of the prologue, so that a long one leaves room for the
// transaction, which is what the delivery is about.
constexpr std::size_t max_prologue_bytes = max_transcript_bytes / 2;

core::transcript_line not_kept(double t_ms, std::size_t n) {
  return {t_ms, core::direction::server,
          "(" + std::to_string(n) + " more transcript lines not kept)"};
}

auto at(const std::vector<core::transcript_line>& v, std::size_t i) {
  return v.begin() + static_cast<std::ptrdiff_t>(i);
}

}  // namespace

std::size_t stored_size(std::string_view line) {
  std::size_t n = transcript_line_overhead;
  for (const char ch : line) {
    // What Boost.JSON writes for each octet (RFC 8259 §7).
    switch (ch) {
      case '"':
      case '\\':
      case '\b':
      case '\f':
      case '\n':
      case '\r':
      case '\t': n += 2; break;
      default: n += static_cast<unsigned char>(ch) < 0x20 ? 6 : 1;  // \u00XX
    }
  }
  return n;
}

void transcript::add(double t_ms, core::direction dir, std::string_view line) {
  if (line.size() > max_transcript_line) line = line.substr(0, max_transcript_line);
  const auto size = stored_size(line);
  core::transcript_line entry{t_ms, dir, std::string(line)};
  if (!full_ && lines_.size() < max_transcript_lines && bytes_ + size <= max_transcript_bytes) {
    lines_.push_back(std::move(entry));
    bytes_ += size;
    last_kept_ = true;
    last_dropped_.reset();
    if (tx_.active) {
      ++tx_.lines;
      tx_.bytes += size;
    }
    return;
  }
  full_ = true;
  ++dropped_;
  last_kept_ = false;
  if (tx_.active) {
    last_dropped_.reset();
    overflow(std::move(entry), size);
  } else {
    last_dropped_ = std::move(entry);  // it may be the MAIL that begins a transaction
  }
}

void transcript::overflow(core::transcript_line line, std::size_t size) {
  // Within the delivery's budget (its prologue and transaction), and never after a line that
  // was not kept.
  if (tx_.dropped == 0 && prologue_end_ + tx_.lines < max_transcript_lines &&
      prologue_bytes_ + tx_.bytes + size <= max_transcript_bytes) {
    tx_.overflow.push_back(std::move(line));
    ++tx_.lines;
    tx_.bytes += size;
  } else {
    ++tx_.dropped;
  }
}

void transcript::begin_transaction() {
  tx_ = transaction{};
  tx_.active = true;
  tx_.first = lines_.size();
  std::size_t mail_size = 0;
  if (last_kept_ && !lines_.empty()) {
    tx_.first = lines_.size() - 1;
    mail_size = stored_size(lines_.back().line);
  }
  if (in_prologue_) {
    in_prologue_ = false;
    while (prologue_end_ < tx_.first) {
      const auto size = stored_size(lines_[prologue_end_].line);
      if (prologue_bytes_ + size > max_prologue_bytes) break;
      prologue_bytes_ += size;
      ++prologue_end_;
    }
    prologue_dropped_ = (tx_.first - prologue_end_) + dropped_ - (last_dropped_ ? 1 : 0);
  }
  if (mail_size > 0) {
    tx_.lines = 1;
    tx_.bytes = mail_size;
  } else if (last_dropped_) {
    auto mail = std::move(*last_dropped_);
    last_dropped_.reset();
    const auto size = stored_size(mail.line);
    overflow(std::move(mail), size);
  }
}

void transcript::end_transaction() { tx_ = transaction{}; }

std::vector<core::transcript_line> transcript::take_delivery(double t_ms) {
  std::vector<core::transcript_line> out;
  out.reserve(prologue_end_ + tx_.lines + 2);
  out.insert(out.end(), lines_.cbegin(), at(lines_, prologue_end_));
  if (prologue_dropped_ > 0) {
    // Stamped with the time the transaction began, so that the times keep their order.
    const double began = tx_.first < lines_.size() ? lines_[tx_.first].t_ms
                         : !tx_.overflow.empty()   ? tx_.overflow.front().t_ms
                                                   : t_ms;
    out.push_back(not_kept(began, prologue_dropped_));
  }
  out.insert(out.end(), at(lines_, tx_.first), lines_.cend());
  out.insert(out.end(), std::make_move_iterator(tx_.overflow.begin()),
             std::make_move_iterator(tx_.overflow.end()));
  tx_.overflow.clear();
  if (tx_.dropped > 0) out.push_back(not_kept(t_ms, tx_.dropped));
  return out;
}

std::vector<core::transcript_line> transcript::take_session(double t_ms) {
  auto out = std::move(lines_);
  lines_.clear();
  if (dropped_ > 0) out.push_back(not_kept(t_ms, dropped_));
  return out;
}

}  // namespace mxlens::receiver
