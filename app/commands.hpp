// The subcommands of the mxlens binary. Each takes its arguments (after the subcommand name) and
// returns the process exit status.
#pragma once

#include <string>
#include <vector>

namespace mxlens::app {

int serve_command(const std::vector<std::string>& args);
int tests_command(const std::vector<std::string>& args);
int sessions_command(const std::vector<std::string>& args);
int analyze_command(const std::vector<std::string>& args);
int new_command(const std::vector<std::string>& args);  // the pipeline client
int wait_command(const std::vector<std::string>& args);
int check_command(const std::vector<std::string>& args);
int worker_command(const std::vector<std::string>& args);  // internal: the analysis worker

// Default data directory, relative to the working directory.
inline constexpr const char* default_data_dir = "./mxlens-data";
inline constexpr const char* database_file = "mxlens.db";
inline constexpr int default_retention_days = 30;
// MiB kept free where the database is (app/disk_guard.hpp).
inline constexpr std::uint64_t default_min_free_disk_mib = 256;

std::string system_hostname();

}  // namespace mxlens::app
