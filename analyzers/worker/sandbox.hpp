// The analysis worker's confinement. The worker exists because libspf2, libopendkim and GMime read
// attacker-chosen bytes; a memory bug in one of them must end in a dead worker, never in the
// server's hands. So the worker holds nothing worth taking and can do little: no descriptor but its
// socket to the server (and the log), no environment, an unprivileged uid when the server is root,
// PR_SET_NO_NEW_PRIVS, a few resource limits, and a seccomp filter that allows the system calls
// analysis needs — memory, time, its frames, the resolver's UDP and TCP — and nothing else: opening
// a file or a socket of another family fails, and exec, fork or any other call ends the worker with
// SIGSYS, which the pool reports as a sandbox stop.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace mxlens::analyzers::worker {

struct sandbox_settings {
  std::optional<uid_t> uid;  // set when the server runs as root: the worker becomes this user
  std::optional<gid_t> gid;
};

// Loads what the libraries would otherwise open lazily (iconv modules for the charsets mail
// uses, OpenSSL's configuration), then confines this process. Call once, after the resolver is
// made and before the first job. Throws std::runtime_error when a step fails.
void enter_sandbox(const sandbox_settings& s);

// How a worker that died of `signal` ended, in words; the seccomp filter's SIGSYS is named.
std::string death_of_signal(int signal);

// The user a root server runs its workers as: NAME, else "mxlens" if it exists, else "nobody".
// Nothing when the server is not root (it cannot change user). Throws for an unknown NAME.
sandbox_settings worker_user(const std::string& name);

}  // namespace mxlens::analyzers::worker
