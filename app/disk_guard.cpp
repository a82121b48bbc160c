#include "app/disk_guard.hpp"

#include <sys/statvfs.h>

#include <string>

#include "core/log.hpp"

namespace mxlens::app {

disk_guard::disk_guard(std::filesystem::path dir, std::uint64_t min_free)
    : dir_(std::move(dir)), min_free_(min_free) {}

void disk_guard::refresh(const std::function<std::uint64_t()>& reusable) {
  if (min_free_ == 0) return;
  if (!measure_.due()) return;
  struct statvfs fs {};
  if (::statvfs(dir_.c_str(), &fs) != 0) return;
  std::uint64_t free = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  try {
    free += reusable();
  } catch (const std::exception&) {
    // The file system's own figure alone: a little pessimistic.
  }
  free_ = free;
  const auto next = free < min_free_ / 2 ? level::critical
                    : free < min_free_   ? level::low
                                         : level::ok;
  const auto was = level_.exchange(next);
  if (next == was) return;
  const auto mib = [](std::uint64_t b) { return std::to_string(b >> 20) + " MiB"; };
  const std::string where = " free where the database is (--min-free-disk " + mib(min_free_) + ")";
  if (next == level::critical)
    core::log_error("disk: " + mib(free) + where +
                    ": mail is deferred (452 4.3.1) and sessions "
                    "are not stored until there is room; delete tests to make some");
  else if (next == level::low)
    core::log_warn("disk: " + mib(free) + where + ": sessions are not stored until there is room");
  else core::log_info("disk: " + mib(free) + where + ": storing everything again");
}

}  // namespace mxlens::app
