// Analysis in worker processes. The analyzers feed attacker-chosen data to C libraries that can
// abort or worse (libspf2, libopendkim), so they run in `mxlens` itself re-executed as an
// internal worker, one job at a time, talking over a socketpair in frames: a 4-octet big-endian
// length, then the bytes. A job is two frames (its JSON, then the raw message); the answer is
// one JSON frame. The pool kills a worker that overruns its deadline and replaces any worker
// that dies; the caller gets an analysis whose `errors` say what happened.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analyzers/analysis/analysis.hpp"
#include "analyzers/dns/resolver.hpp"
#include "analyzers/worker/sandbox.hpp"

namespace mxlens::analyzers::worker {

// Frames larger than this are refused (the message size limit plus room for the JSON).
inline constexpr std::uint32_t max_frame = 256u << 20;

struct worker_settings {
  int fd = 3;
  dns::settings dns;
  std::size_t memory_mb = 1024;  // address-space limit; 0 = none
  int cpu_seconds = 60;          // CPU time per job
  sandbox_settings sandbox;
};

// The worker process: answers jobs until its socket closes. Returns the exit status.
int run_worker(const worker_settings& s);

struct pool_settings {
  // Analyses run at once by anyone; the pool starts this many workers.
  std::size_t workers = 2;
  // Beyond `workers`, the pool grows to this many (0: 4 x workers), but only for a job whose
  // client (its address, an IPv6 /64 as one) has no other analysis running: an analysis that waits
  // on a sender's silent DNS holds a worker, and one client's stalled analyses must not hold up
  // another client's (Postfix counts its limits per client address the same way,
  // smtpd_client_connection_count_limit).
  std::size_t most_workers = 0;
  std::chrono::milliseconds deadline{60000};
  // Passed to each worker: --dns, --dns-timeout-ms, --memory-mb, --cpu-seconds, --uid, --gid.
  std::vector<std::string> worker_args;
};

// A finished analysis: its JSON text, to be stored as it is, and the little of it the server reads
// (score, the SPF, DKIM and DMARC results, errors), so that the server never parses a whole report.
struct analysis_result {
  core::analysis_summary summary;
  std::string text;
};

class pool {
 public:
  pool(const boost::asio::any_io_executor& ex, pool_settings s);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // Starts the workers; throws when one cannot be started.
  void start();
  // The analysis of one delivery. Never throws: failures come back in analysis.errors. The job
  // is read where it is (a message can be 256 MiB), so `in` must outlive the analysis: co_await
  // it at once.
  boost::asio::awaitable<analysis_result> analyze(const analysis_input& in);
  // Stops every worker (jobs in flight end with an error).
  void stop();

  std::uint64_t replaced() const { return replaced_; }

 private:
  struct process {
    pid_t pid = -1;
    std::unique_ptr<boost::asio::local::stream_protocol::socket> socket;
    bool busy = false;
  };
  using strand_type = boost::asio::strand<boost::asio::any_io_executor>;

  struct attempt_result {
    bool sent = false;  // the job reached the worker
    bool ok = false;    // and its answer came back
    bool timed_out = false;
    std::string summary;
    std::string reply;
  };
  boost::asio::awaitable<analysis_result> run(const analysis_input& in);
  boost::asio::awaitable<attempt_result> attempt(std::shared_ptr<process> p,
                                                 const std::string& header, const std::string& raw);
  void replace(const std::shared_ptr<process>& retired);  // starts another in its place
  // A worker for a job from `client`: one of the first `workers` analyses running, or the only
  // one from that client, up to `most_workers`.
  boost::asio::awaitable<std::shared_ptr<process>> acquire(const std::string& client);
  void release(const std::shared_ptr<process>& p);
  void leave(const std::string& client);  // a job from `client` ended: waiting jobs try again
  std::size_t most_workers() const;
  std::shared_ptr<process> spawn();
  std::string retire(const std::shared_ptr<process>& p);  // kills, reaps, says how it ended

  strand_type strand_;
  pool_settings settings_;
  std::vector<std::shared_ptr<process>> processes_;
  std::deque<boost::asio::steady_timer*> waiters_;
  std::map<std::string, std::size_t> running_;  // analyses running, by client network
  std::size_t running_total_ = 0;
  std::uint64_t replaced_ = 0;
  bool stopped_ = false;
};

}  // namespace mxlens::analyzers::worker
