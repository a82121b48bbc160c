#include "analyzers/worker/sandbox.hpp"

#include <grp.h>
#include <iconv.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <resolv.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <vector>

namespace mxlens::analyzers::worker {

namespace {

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error("sandbox: " + what + ": " + std::strerror(err));
}

// The charsets mail declares (RFC 2047 words and MIME parts), each converted to UTF-8 by GMime.
// glibc loads the converter of each from a module on the first iconv_open; the descriptors stay
// open for the worker's life, so their modules stay loaded once no file can be opened.
void load_converters() {
  static const char* const charsets[] = {
      "ISO-8859-1",   "ISO-8859-2",   "ISO-8859-3",   "ISO-8859-4",   "ISO-8859-5",
      "ISO-8859-6",   "ISO-8859-7",   "ISO-8859-8",   "ISO-8859-9",   "ISO-8859-10",
      "ISO-8859-11",  "ISO-8859-13",  "ISO-8859-14",  "ISO-8859-15",  "ISO-8859-16",
      "WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1252", "WINDOWS-1253", "WINDOWS-1254",
      "WINDOWS-1255", "WINDOWS-1256", "WINDOWS-1257", "WINDOWS-1258", "KOI8-R",
      "KOI8-U",       "CP437",        "CP850",        "CP866",        "MACINTOSH",
      "TIS-620",      "SHIFT_JIS",    "CP932",        "EUC-JP",       "ISO-2022-JP",
      "GB2312",       "GBK",          "GB18030",      "BIG5",         "BIG5-HKSCS",
      "EUC-KR",       "ISO-2022-KR",  "EUC-TW",       "UTF-7",        "UTF-16",
      "UTF-16LE",     "UTF-16BE",     "UTF-32",       "UCS-2",        "US-ASCII"};
  // iconv_open's "no such conversion" is the pointer (iconv_t)-1 (iconv_open(3)).
  const auto none = reinterpret_cast<iconv_t>(-1);  // NOLINT(performance-no-int-to-ptr)
  static std::vector<iconv_t> kept;
  for (const char* cs : charsets) {
    for (auto [to, from] : {std::pair{"UTF-8", cs}, std::pair{cs, "UTF-8"}}) {
      iconv_t cd = iconv_open(to, from);
      if (cd != none) kept.push_back(cd);
    }
  }
}

void become(const sandbox_settings& s) {
  if (!s.uid) return;
  if (::setgroups(0, nullptr) != 0) fail("setgroups", errno);
  if (s.gid && ::setgid(*s.gid) != 0) fail("setgid", errno);
  if (::setuid(*s.uid) != 0) fail("setuid", errno);
  if (::setuid(0) == 0) throw std::runtime_error("sandbox: could become root again");
}

void limit(int resource, rlim_t value, const char* name) {
  rlimit r{value, value};
  if (::setrlimit(resource, &r) != 0) fail(name, errno);
}

// The system calls analysis makes: memory, time, signals, its socket to the server, and the
// resolver's UDP and TCP sockets on its own event loop (libevent: epoll). Numbers are the
// machine's own (libseccomp resolves the names).
constexpr const char* allowed[] = {
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    // descriptors already open, and the resolver's sockets
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "lseek", "fcntl", "dup",
    "fstat", "newfstatat", "statx", "ioctl", "connect", "bind", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg", "setsockopt", "getsockopt", "getsockname", "getpeername",
    "shutdown", "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "eventfd2", "pipe2",
    // time, randomness, limits
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "getrandom", "getrusage", "getrlimit", "setrlimit", "prlimit64",
    // threads and signals of this process (abort() raises SIGABRT with tgkill)
    "futex", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "tgkill", "gettid", "getpid", "getppid", "sched_yield", "sched_getaffinity", "rseq",
    "set_robust_list", "pause",
    // identity reads (GLib)
    "getuid", "geteuid", "getgid", "getegid", "uname", "sysinfo", "exit", "exit_group"};

void filter() {
  // Anything not named ends the worker: SIGSYS, reported by the pool (death_of_signal).
  std::unique_ptr<void, decltype(&seccomp_release)> ctx(seccomp_init(SCMP_ACT_KILL_PROCESS),
                                                        seccomp_release);
  if (!ctx) throw std::runtime_error("sandbox: seccomp_init failed");
  auto rule = [&](uint32_t action, const char* name, unsigned count = 0,
                  const scmp_arg_cmp* args = nullptr) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return;  // not on this machine
    const int rc = seccomp_rule_add_array(ctx.get(), action, nr, count, args);
    if (rc != 0) fail(std::string("seccomp rule for ") + name, -rc);
  };
  for (const char* name : allowed) rule(SCMP_ACT_ALLOW, name);
  // The resolver's sockets only: IPv4 and IPv6. Another family, and every file, is refused
  // with EACCES, so that a library that tries gets an error it can report.
  for (int family : {AF_INET, AF_INET6}) {
    const scmp_arg_cmp arg = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family));
    rule(SCMP_ACT_ALLOW, "socket", 1, &arg);
  }
  // (One comparison per argument and rule: the other families as ranges and values.)
  static_assert(AF_INET < AF_INET6);
  const scmp_arg_cmp below = SCMP_A0(SCMP_CMP_LT, AF_INET);
  const scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GT, AF_INET6);
  rule(SCMP_ACT_ERRNO(EACCES), "socket", 1, &below);
  rule(SCMP_ACT_ERRNO(EACCES), "socket", 1, &above);
  for (int family = AF_INET + 1; family < AF_INET6; ++family) {
    const scmp_arg_cmp arg = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family));
    rule(SCMP_ACT_ERRNO(EACCES), "socket", 1, &arg);
  }
  for (const char* name : {"open", "openat", "openat2", "creat", "access", "faccessat",
                           "faccessat2", "readlink", "readlinkat"})
    rule(SCMP_ACT_ERRNO(EACCES), name);
  if (const int rc = seccomp_load(ctx.get()); rc != 0) fail("seccomp_load", -rc);
}

}  // namespace

void enter_sandbox(const sandbox_settings& s) {
  // What would otherwise be opened later: converters, OpenSSL's configuration, the time zone.
  load_converters();
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  ::tzset();
  ::res_init();  // the C library's resolver state, which libraries may read (host.conf too)
  become(s);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS", errno);
  limit(RLIMIT_NOFILE, 64, "RLIMIT_NOFILE");
  limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC");
  filter();
}

std::string death_of_signal(int signal) {
  if (signal == SIGSYS)
    return "stopped by its sandbox (signal 31, SIGSYS: a system call analysis never makes)";
  return "crashed (signal " + std::to_string(signal) + ", " + ::strsignal(signal) + ")";
}

sandbox_settings worker_user(const std::string& name) {
  sandbox_settings s;
  if (::geteuid() != 0) {
    if (!name.empty())
      throw std::runtime_error("--user " + name +
                               ": only a server started as root can change user");
    return s;
  }
  const std::vector<std::string> candidates =
      name.empty() ? std::vector<std::string>{"mxlens", "nobody"} : std::vector{name};
  for (const auto& n : candidates) {
    if (const passwd* pw = ::getpwnam(n.c_str())) {
      if (pw->pw_uid == 0) throw std::runtime_error("--user " + n + ": is root");
      s.uid = pw->pw_uid;
      s.gid = pw->pw_gid;
      return s;
    }
  }
  throw std::runtime_error("--user " + candidates.front() + ": no such user");
}

}  // namespace mxlens::analyzers::worker
