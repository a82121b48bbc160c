// One line per event on standard error: "2026-11-22T10:00:00.123Z info session ...".
// Thread-safe; each call writes one whole line.
#pragma once

#include <string_view>

namespace mxlens::core {

enum class log_level { debug, info, warn, error };

void set_log_level(log_level level);
bool log_enabled(log_level level);
void log(log_level level, std::string_view line);

inline void log_info(std::string_view line) { log(log_level::info, line); }
inline void log_warn(std::string_view line) { log(log_level::warn, line); }
inline void log_error(std::string_view line) { log(log_level::error, line); }
inline void log_debug(std::string_view line) {
  if (log_enabled(log_level::debug)) log(log_level::debug, line);
}

}  // namespace mxlens::core
