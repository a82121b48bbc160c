#include "webui/metrics.hpp"

#include <sstream>

namespace mxlens::webui {

void metrics::session(const std::string& outcome) {
  std::lock_guard lock(mutex_);
  ++sessions_[outcome];
}

void metrics::delivery(const std::string& tls_version, double seconds, std::size_t errors) {
  std::lock_guard lock(mutex_);
  ++deliveries_;
  ++tls_versions_[tls_version];
  analysis_errors_ += errors;
  analysis_sum_ += seconds;
  for (std::size_t i = 0; i < bounds.size(); ++i)
    if (seconds <= bounds[i]) ++buckets_[i];
}

void metrics::http_response(int status) {
  std::lock_guard lock(mutex_);
  ++http_[status];
}

std::string metrics::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream o;
  o << "# HELP mxlens_smtp_sessions_total SMTP sessions ended, by outcome.\n"
       "# TYPE mxlens_smtp_sessions_total counter\n";
  for (const auto& [k, v] : sessions_)
    o << "mxlens_smtp_sessions_total{outcome=\"" << k << "\"} " << v << "\n";
  o << "# HELP mxlens_deliveries_total Deliveries stored with their report.\n"
       "# TYPE mxlens_deliveries_total counter\n"
       "mxlens_deliveries_total "
    << deliveries_ << "\n";
  o << "# HELP mxlens_deliveries_tls_total Deliveries by the TLS version they were sent over.\n"
       "# TYPE mxlens_deliveries_tls_total counter\n";
  for (const auto& [k, v] : tls_versions_)
    o << "mxlens_deliveries_tls_total{version=\"" << k << "\"} " << v << "\n";
  o << "# HELP mxlens_analysis_errors_total Analyzer errors recorded in reports.\n"
       "# TYPE mxlens_analysis_errors_total counter\n"
       "mxlens_analysis_errors_total "
    << analysis_errors_ << "\n";
  o << "# HELP mxlens_analysis_seconds Time from the end of DATA to the stored report.\n"
       "# TYPE mxlens_analysis_seconds histogram\n";
  for (std::size_t i = 0; i < bounds.size(); ++i)
    o << "mxlens_analysis_seconds_bucket{le=\"" << bounds[i] << "\"} " << buckets_[i] << "\n";
  o << "mxlens_analysis_seconds_bucket{le=\"+Inf\"} " << deliveries_ << "\n"
    << "mxlens_analysis_seconds_sum " << analysis_sum_ << "\n"
    << "mxlens_analysis_seconds_count " << deliveries_ << "\n";
  o << "# HELP mxlens_http_responses_total HTTP responses, by status.\n"
       "# TYPE mxlens_http_responses_total counter\n";
  for (const auto& [k, v] : http_)
    o << "mxlens_http_responses_total{code=\"" << k << "\"} " << v << "\n";
  return o.str();
}

std::string render(const storage::commit_timing& t) {
  std::ostringstream o;
  o << "# HELP mxlens_store_commit_seconds Time the store took to commit a group of deliveries, "
       "reports and sessions (its writes and fsync).\n"
       "# TYPE mxlens_store_commit_seconds histogram\n";
  for (std::size_t i = 0; i < t.bounds.size(); ++i)
    o << "mxlens_store_commit_seconds_bucket{le=\"" << t.bounds[i] << "\"} " << t.at_most[i]
      << "\n";
  o << "mxlens_store_commit_seconds_bucket{le=\"+Inf\"} " << t.commits << "\n"
    << "mxlens_store_commit_seconds_sum " << t.seconds << "\n"
    << "mxlens_store_commit_seconds_count " << t.commits << "\n";
  return o.str();
}

}  // namespace mxlens::webui
