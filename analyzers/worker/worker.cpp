#include "analyzers/worker/worker.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "analyzers/checks/checks.hpp"
#include "analyzers/message/message.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/rate_limit.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::worker {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::array<unsigned char, 4> length_prefix(std::size_t size) {
  const auto n = static_cast<std::uint32_t>(size);
  return {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
          static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
}

std::uint32_t frame_length(const unsigned char* b) {
  return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
         std::uint32_t(b[3]);
}

bool read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool read_frame(int fd, std::string& out) {
  unsigned char len[4];
  if (!read_all(fd, reinterpret_cast<char*>(len), 4)) return false;
  const auto n = frame_length(len);
  if (n > max_frame) return false;
  out.resize(n);
  return read_all(fd, out.data(), n);
}

// The CPU budget of the next job: the soft limit sits that far above what this process has used.
// Going over raises SIGXCPU, which ends the worker; the pool replaces it.
void budget_cpu(int seconds) {
  if (seconds <= 0) return;
  rusage use{};
  getrusage(RUSAGE_SELF, &use);
  rlimit lim{};
  getrlimit(RLIMIT_CPU, &lim);
  lim.rlim_cur = static_cast<rlim_t>(use.ru_utime.tv_sec + use.ru_stime.tv_sec + seconds + 1);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_cur > lim.rlim_max) lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_CPU, &lim);
}

// Test-only: with MXLENS_TEST_FAULTS set in the environment, a message carrying
// "X-Mxlens-Test-Fault: crash" or "hang" makes this worker crash or hang, and "open" or "exec"
// makes it try what a library taken over by an attacker would (the sandbox refuses both).
void test_fault(const std::string& raw) {
  static const bool enabled = std::getenv("MXLENS_TEST_FAULTS") != nullptr;
  if (!enabled) return;
  for (const auto& f : message::header_fields(raw)) {
    if (core::lowercase(f.name) != "x-mxlens-test-fault") continue;
    auto v = message::unfold(f.raw_value);
    if (v == "crash") std::abort();
    if (v == "hang")
      for (;;) ::pause();
    if (v == "open") {
      const int fd = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
      const int err = errno;
      if (fd >= 0) ::close(fd);
      throw std::runtime_error(fd >= 0 ? "test fault: opened /etc/passwd"
                                       : std::string("test fault: open /etc/passwd: ") +
                                             std::strerror(err));
    }
    if (v == "exec") {
      char* const argv[] = {const_cast<char*>("true"), nullptr};
      char* const envp[] = {nullptr};
      ::execve("/bin/true", argv, envp);
      throw std::runtime_error(std::string("test fault: exec /bin/true: ") + std::strerror(errno));
    }
  }
}

}  // namespace

int run_worker(const worker_settings& s) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the server
  if (getppid() == 1) return 1;
  // Nothing but the standard descriptors and the socket to the server, whatever was inherited
  // (the pool's spawn closes the rest too).
  if (::close_range(3 + 1, ~0U, 0) != 0) return 1;
  ::signal(SIGPIPE, SIG_IGN);
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
#if !defined(__SANITIZE_ADDRESS__)
  // (AddressSanitizer reserves terabytes of address space: no limit in sanitizer builds.)
  if (s.memory_mb > 0) {
    rlimit as{static_cast<rlim_t>(s.memory_mb) << 20, static_cast<rlim_t>(s.memory_mb) << 20};
    setrlimit(RLIMIT_AS, &as);
  }
#endif
  dns::resolver resolver(s.dns);
  try {
    preload();
    enter_sandbox(s.sandbox);
  } catch (const std::exception& e) {
    core::log_error(std::string("analysis worker: ") + e.what());
    return 1;
  }
  for (;;) {
    std::string header, raw;
    if (!read_frame(s.fd, header)) return 0;  // the server closed the socket
    if (!read_frame(s.fd, raw)) return 1;
    budget_cpu(s.cpu_seconds);
    analysis out;
    if (auto in = core::read_json<analysis_input>(header); !in) {
      out = failed_analysis("analysis failed: the job could not be read (" + in.error().message() +
                            ")");
    } else {
      try {
        in->delivery.raw = std::move(raw);
        test_fault(in->delivery.raw);
        out = analyze(*in, resolver);
      } catch (const std::exception& e) {
        out = failed_analysis(std::string("analysis failed: ") + e.what());
      }
    }
    // Two frames: the summary the server reads, then the analysis it stores as it is.
    for (const auto& frame :
         {json::serialize(core::to_json(summary_of(out))), json::serialize(core::to_json(out))}) {
      const auto len = length_prefix(frame.size());
      if (!write_all(s.fd, reinterpret_cast<const char*>(len.data()), len.size()) ||
          !write_all(s.fd, frame.data(), frame.size()))
        return 1;
    }
  }
}

pool::pool(const asio::any_io_executor& ex, pool_settings s)
    : strand_(asio::make_strand(ex)), settings_(std::move(s)) {}

pool::~pool() { stop(); }

void pool::start() {
  for (std::size_t i = 0; i < std::max<std::size_t>(1, settings_.workers); ++i)
    processes_.push_back(spawn());
}

std::shared_ptr<pool::process> pool::spawn() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::runtime_error(std::string("analysis worker: socketpair: ") + std::strerror(errno));
  // Moved out of the way of descriptor 3, where the worker expects its end.
  int child_end = ::fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
  ::close(fds[1]);
  std::vector<std::string> args{"mxlens", "__worker", "--fd", "3"};
  args.insert(args.end(), settings_.worker_args.begin(), settings_.worker_args.end());
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The worker gets its socket as 3, the log as 1 and 2, and nothing else: no listening socket,
  // no client connection, no database (Asio's descriptors are not close-on-exec), and no
  // environment but what a test or a sanitizer build asked to pass on.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, child_end, 3);
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);
  std::vector<std::string> env_kept;
  for (const char* name : {"MXLENS_TEST_FAULTS", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"})
    if (const char* v = std::getenv(name)) env_kept.push_back(std::string(name) + "=" + v);
#if defined(__SANITIZE_ADDRESS__)
  // LeakSanitizer's check at exit stops the world with clone and ptrace and lists /proc/self/task,
  // all of which the sandbox's filter refuses (the worker would end in SIGSYS instead). The leak
  // check is off in workers only; ASan and UBSan still watch them, and the same analysis code is
  // leak-checked where it runs outside the sandbox (`mxlens analyze`, the unit tests, bench/floor).
  // LSAN_OPTIONS is read after ASAN_OPTIONS, and a later setting wins: this one goes last.
  const char* lsan = std::getenv("LSAN_OPTIONS");
  std::erase_if(env_kept, [](const std::string& e) { return e.starts_with("LSAN_OPTIONS="); });
  env_kept.push_back(std::string("LSAN_OPTIONS=") + (lsan ? std::string(lsan) + ":" : "") +
                     "detect_leaks=0");
#endif
  std::vector<char*> envp;
  envp.reserve(env_kept.size() + 1);
  for (auto& e : env_kept) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(child_end);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error(std::string("analysis worker: cannot start: ") + std::strerror(rc));
  }
  auto p = std::make_shared<process>();
  p->pid = pid;
  p->socket = std::make_unique<asio::local::stream_protocol::socket>(
      strand_, asio::local::stream_protocol(), fds[0]);
  return p;
}

std::string pool::retire(const std::shared_ptr<process>& p) {
  int status = 0;
  std::string how = "ended";
  if (p->pid > 0) {
    pid_t r = ::waitpid(p->pid, &status, WNOHANG);
    if (r == 0) {
      ::kill(p->pid, SIGKILL);
      r = ::waitpid(p->pid, &status, 0);
    }
    if (r == p->pid) {
      if (WIFSIGNALED(status)) {
        how = death_of_signal(WTERMSIG(status));
      } else if (WIFEXITED(status)) {
        how = "exited with status " + std::to_string(WEXITSTATUS(status));
      }
    }
    p->pid = -1;
  }
  boost::system::error_code ignored;
  p->socket->close(ignored);
  std::erase(processes_, p);
  return how;
}

void pool::release(const std::shared_ptr<process>& p) { p->busy = false; }

// Every waiting job looks again: which of them may start depends on its client.
void pool::leave(const std::string& client) {
  if (auto it = running_.find(client); it != running_.end() && --it->second == 0)
    running_.erase(it);
  --running_total_;
  for (auto* t : std::exchange(waiters_, {})) t->cancel();
}

std::size_t pool::most_workers() const {
  const auto base = std::max<std::size_t>(1, settings_.workers);
  return std::max(base, settings_.most_workers ? settings_.most_workers : 4 * base);
}

asio::awaitable<std::shared_ptr<pool::process>> pool::acquire(const std::string& client) {
  for (;;) {
    if (stopped_) co_return nullptr;
    const bool alone = !running_.contains(client);
    if (running_total_ < std::max<std::size_t>(1, settings_.workers) ||
        (alone && running_total_ < most_workers())) {
      std::shared_ptr<process> found;
      for (auto& p : processes_)
        if (!p->busy) {
          found = p;
          break;
        }
      if (!found && processes_.size() < most_workers()) {
        try {
          found = spawn();
          processes_.push_back(found);
        } catch (const std::exception& e) {
          core::log_error(e.what());
        }
      }
      if (found) {
        found->busy = true;
        ++running_[client];
        ++running_total_;
        co_return found;
      }
    }
    asio::steady_timer wait(strand_, asio::steady_timer::time_point::max());
    waiters_.push_back(&wait);
    boost::system::error_code ec;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<analysis_result> pool::analyze(const analysis_input& in) {
  auto job = run(in);
  auto result = co_await asio::co_spawn(strand_, std::move(job), asio::use_awaitable);
  co_return result;
}

asio::awaitable<pool::attempt_result> pool::attempt(std::shared_ptr<process> p,
                                                    const std::string& header,
                                                    const std::string& raw) {
  attempt_result r;
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer deadline(strand_, settings_.deadline);
  auto on_deadline = [p, timed_out](boost::system::error_code ec) {
    if (ec || p->pid <= 0) return;
    *timed_out = true;
    ::kill(p->pid, SIGKILL);
  };
  deadline.async_wait(std::move(on_deadline));

  // Two frames, gathered from where the bytes already are (a message can be 50 MiB).
  const auto header_len = length_prefix(header.size());
  const auto raw_len = length_prefix(raw.size());
  const std::array<asio::const_buffer, 4> frames{asio::buffer(header_len), asio::buffer(header),
                                                 asio::buffer(raw_len), asio::buffer(raw)};
  boost::system::error_code ec;
  co_await asio::async_write(*p->socket, frames, asio::redirect_error(asio::use_awaitable, ec));
  r.sent = !ec;
  for (std::string* frame : {&r.summary, &r.reply}) {
    if (ec) break;
    std::array<unsigned char, 4> len{};
    co_await asio::async_read(*p->socket, asio::buffer(len),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && frame_length(len.data()) > max_frame) ec = asio::error::message_size;
    if (!ec) {
      frame->resize(frame_length(len.data()));
      co_await asio::async_read(*p->socket, asio::buffer(*frame),
                                asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  deadline.cancel();
  r.ok = !ec;
  r.timed_out = *timed_out;
  co_return r;
}

void pool::replace(const std::shared_ptr<process>& p) {
  if (!stopped_) {
    try {
      processes_.push_back(spawn());
      ++replaced_;
    } catch (const std::exception& e) {
      core::log_error(e.what());
    }
  }
  release(p);
}

namespace {
analysis_result result_of(const analysis& a) {
  return {summary_of(a), json::serialize(core::to_json(a))};
}
}  // namespace

asio::awaitable<analysis_result> pool::run(const analysis_input& in) {
  const std::string header = json::serialize(core::to_json(in));
  // A worker found dead when the job is handed over (it died idle) did not fail this job: the
  // job goes to a fresh worker once.
  // One host, or one IPv6 customer's /64, is one client (core/rate_limit.hpp).
  const std::string client = core::client_network(in.delivery.connection.client_ip);
  for (int tries = 0;; ++tries) {
    auto p = co_await acquire(client);
    if (!p) co_return result_of(failed_analysis("analysis stopped: the server is shutting down"));
    auto r = co_await attempt(p, header, in.delivery.raw);
    if (r.ok) {
      release(p);
      leave(client);
      // Only the summary is read; the analysis must be a JSON object, which its first and last
      // characters show (it is the worker's own serialization).
      auto summary = core::read_json<core::analysis_summary>(r.summary);
      if (summary && r.reply.size() >= 2 && r.reply.front() == '{' && r.reply.back() == '}')
        co_return analysis_result{std::move(*summary), std::move(r.reply)};
      co_return result_of(failed_analysis("analysis worker sent an unreadable answer"));
    }
    const std::string how = retire(p);
    std::string error = r.timed_out ? "analysis timed out after " +
                                          std::to_string(settings_.deadline.count()) +
                                          " ms; its worker was stopped and replaced"
                                    : "analysis worker " + how + "; it was replaced";
    core::log_warn(error);
    replace(p);
    leave(client);
    if (!r.sent && !r.timed_out && tries == 0) continue;
    co_return result_of(failed_analysis(error));
  }
}

void pool::stop() {
  if (stopped_) return;
  stopped_ = true;
  // Waiting jobs wake to find the pool stopped.
  try {
    for (auto* t : std::exchange(waiters_, {})) t->cancel();
  } catch (const std::exception& e) {
    core::log_error(std::string("analysis pool: ") + e.what());
  }
  for (auto& p : std::vector(processes_)) retire(p);
  processes_.clear();
}

}  // namespace mxlens::analyzers::worker
