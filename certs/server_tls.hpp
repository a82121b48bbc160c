// The server's TLS configuration: certificates (loaded from PEM files or generated self-signed
// on first start) and the SSL_CTX every STARTTLS session is built from.
//
// It deliberately accepts weak TLS (TLS 1.0 to 1.3, OpenSSL @SECLEVEL=0, a wide cipher list):
// mxlens grades what a sender does, so a sender that only speaks TLS 1.0 must be recorded rather
// than turned into a failed handshake and a plaintext retry.
//
// Reloading builds a new SSL_CTX and swaps it in; sessions already running keep the one they
// started with, so a reload never drops a session.
#pragma once

#include <openssl/ssl.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mxlens::certs {

struct key_pair_files {
  std::filesystem::path cert;  // PEM chain, leaf first
  std::filesystem::path key;   // PEM private key
};

using ssl_ctx_ptr = std::shared_ptr<SSL_CTX>;

// Key types generated for a self-signed pair.
enum class key_type { rsa2048, ecdsa_p256 };

struct pem_pair {
  std::string cert;
  std::string key;
};

// A self-signed certificate for `hostname` (CN and subjectAltName), valid for ten years.
pem_pair generate_self_signed(const std::string& hostname, key_type type);

// Paths of the self-signed RSA and ECDSA pairs in `dir`, made for `hostname` if they are not
// there yet and reused afterwards.
std::vector<key_pair_files> ensure_self_signed(const std::filesystem::path& dir,
                                               const std::string& hostname);

class server_tls {
 public:
  // Called on every SSL_CTX built, initial and reloaded (the receiver installs its ClientHello
  // capture here).
  using customizer = std::function<void(SSL_CTX*)>;

  // Builds the first context; throws std::runtime_error naming the file that failed.
  server_tls(std::vector<key_pair_files> files, customizer customize);

  // The context for a new session.
  ssl_ctx_ptr context() const;

  // Rebuilds from the files. On failure the old context stays and the reason is returned.
  std::string reload();

  // True when a certificate or key file changed (mtime or size) since the last build.
  bool files_changed() const;

  // Subject of the first certificate of the current context, for logs.
  std::string describe() const;

 private:
  struct stamp {
    std::filesystem::file_time_type mtime;
    std::uintmax_t size = 0;
  };
  ssl_ctx_ptr build(std::vector<stamp>& stamps) const;
  std::vector<stamp> current_stamps() const;

  std::vector<key_pair_files> files_;
  customizer customize_;
  mutable std::mutex mutex_;
  ssl_ctx_ptr ctx_;
  std::vector<stamp> stamps_;
};

// The last OpenSSL error queue entry as text (and clears the queue).
std::string openssl_error();

}  // namespace mxlens::certs
