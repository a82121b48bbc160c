#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <string>

#include "core/text.hpp"
#include "core/types.hpp"

namespace mxlens::core {

namespace {
std::atomic<log_level> current{log_level::info};
constexpr std::string_view names[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_log_level(log_level level) { current = level; }
bool log_enabled(log_level level) { return level >= current.load(); }

void log(log_level level, std::string_view line) {
  if (!log_enabled(level)) return;
  std::string out = format_time(now_ms());
  out += ' ';
  out += names[static_cast<int>(level)];
  out += ' ';
  // A line may quote a session (an EHLO name, a TLS reason): what reaches a terminal or a
  // journal from there is shown, never obeyed.
  out += terminal_safe(line);
  out += '\n';
  // One write(2) per line keeps lines whole when threads log at once.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, out.data(), out.size());
}

}  // namespace mxlens::core
