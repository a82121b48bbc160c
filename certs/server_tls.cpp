#include "certs/server_tls.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace mxlens::certs {

namespace {

constexpr long self_signed_days = 3650;

// TLS <= 1.2 suites: everything OpenSSL has, including the weak ones, at security level 0 so
// that TLS 1.0/1.1 and SHA-1 signatures are allowed. NULL-encryption suites stay out: a session
// without encryption would be recorded as TLS while carrying plaintext.
constexpr const char* cipher_list = "ALL:@SECLEVEL=0";
// TLS 1.3 suites: all five of RFC 8446 §B.4.
constexpr const char* tls13_suites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
    "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256";

constexpr unsigned char session_id_context[] = "mxlens";

template <class T, void (*F)(T*)>
struct deleter {
  void operator()(T* p) const { F(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, deleter<BIO, BIO_free_all>>;

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

void add_ext(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) throw std::runtime_error("certificate extension: " + openssl_error());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A client certificate is requested so it can be recorded, never required or judged here: it is
// taken as it came, without building or verifying a chain. Verifying would be OpenSSL's chain
// building and signature checks on certificates an attacker chose, in the server process, for a
// verdict that is ignored anyway. (The client's CertificateVerify signature is still checked: it is
// part of the handshake.)
int accept_without_verifying(X509_STORE_CTX*, void*) { return 1; }

// Writes through a temporary file that is created with `mode` (O_EXCL: never a file or a link
// that was there), then renamed over `p`. A private key is thus never readable by others, not
// while it is written and not in what a failed write leaves, which is removed.
void write_file(const std::filesystem::path& p, const std::string& data, mode_t mode) {
  auto tmp = p;
  tmp += ".tmp";
  ::unlink(tmp.c_str());  // left by an interrupted start
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    throw std::runtime_error("cannot create " + tmp.string() + ": " + std::strerror(errno));
  // The umask can only have narrowed `mode`; a certificate is meant to be readable.
  int error = ::fchmod(fd, mode) == 0 ? 0 : errno;
  for (std::size_t done = 0; error == 0 && done < data.size();) {
    const auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) done += static_cast<std::size_t>(n);
    else if (n == 0) error = EIO;
    else if (errno != EINTR) error = errno;
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(error));
  }
  std::filesystem::rename(tmp, p);
}

}  // namespace

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

pem_pair generate_self_signed(const std::string& hostname, key_type type) {
  pkey_ptr key(type == key_type::rsa2048
                   ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                   : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) throw std::runtime_error("key generation: " + openssl_error());

  x509_ptr cert(X509_new());
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive (RFC 5280 §4.1.2.2)
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -86400);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), self_signed_days * 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("mxlens"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(hostname.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  add_ext(cert.get(), NID_subject_alt_name, "DNS:" + hostname);
  add_ext(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), NID_key_usage,
          type == key_type::rsa2048 ? "critical,digitalSignature,keyEncipherment"
                                    : "critical,digitalSignature");
  add_ext(cert.get(), NID_ext_key_usage, "serverAuth");
  if (!X509_sign(cert.get(), key.get(), EVP_sha256()))
    throw std::runtime_error("certificate signing: " + openssl_error());

  bio_ptr cb(BIO_new(BIO_s_mem())), kb(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(cb.get(), cert.get());
  PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return {bio_string(cb.get()), bio_string(kb.get())};
}

std::vector<key_pair_files> ensure_self_signed(const std::filesystem::path& dir,
                                               const std::string& hostname) {
  std::filesystem::create_directories(dir);
  std::vector<key_pair_files> out;
  for (auto [type, stem] :
       {std::pair{key_type::rsa2048, "rsa"}, std::pair{key_type::ecdsa_p256, "ecdsa"}}) {
    key_pair_files f{dir / (std::string(stem) + ".crt"), dir / (std::string(stem) + ".key")};
    if (!std::filesystem::exists(f.cert) || !std::filesystem::exists(f.key)) {
      auto pem = generate_self_signed(hostname, type);
      write_file(f.key, pem.key, 0600);
      write_file(f.cert, pem.cert, 0644);
    }
    out.push_back(std::move(f));
  }
  return out;
}

server_tls::server_tls(std::vector<key_pair_files> files, customizer customize)
    : files_(std::move(files)), customize_(std::move(customize)) {
  if (files_.empty()) throw std::runtime_error("no certificate configured");
  std::vector<stamp> stamps;
  ctx_ = build(stamps);
  stamps_ = std::move(stamps);
}

ssl_ctx_ptr server_tls::context() const {
  std::lock_guard lock(mutex_);
  return ctx_;
}

std::string server_tls::reload() {
  std::vector<stamp> stamps;
  try {
    auto fresh = build(stamps);
    std::lock_guard lock(mutex_);
    ctx_ = std::move(fresh);
    stamps_ = std::move(stamps);
    return {};
  } catch (const std::exception& e) {
    // Remember the broken files' stamps too, so one bad write is reported once, not every poll.
    std::lock_guard lock(mutex_);
    stamps_ = current_stamps();
    return e.what();
  }
}

std::vector<server_tls::stamp> server_tls::current_stamps() const {
  std::vector<stamp> out;
  for (const auto& f : files_) {
    for (const auto& p : {f.cert, f.key}) {
      std::error_code ec;
      stamp s;
      s.mtime = std::filesystem::last_write_time(p, ec);
      s.size = ec ? 0 : std::filesystem::file_size(p, ec);
      out.push_back(s);
    }
  }
  return out;
}

bool server_tls::files_changed() const {
  auto now = current_stamps();
  std::lock_guard lock(mutex_);
  if (now.size() != stamps_.size()) return true;
  for (std::size_t i = 0; i < now.size(); ++i)
    if (now[i].mtime != stamps_[i].mtime || now[i].size != stamps_[i].size) return true;
  return false;
}

std::string server_tls::describe() const {
  auto ctx = context();
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  if (!cert) return "(none)";
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

ssl_ctx_ptr server_tls::build(std::vector<stamp>& stamps) const {
  stamps = current_stamps();
  ssl_ctx_ptr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + openssl_error());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_security_level(c, 0);
  SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  if (!SSL_CTX_set_cipher_list(c, cipher_list) || !SSL_CTX_set_ciphersuites(c, tls13_suites))
    throw std::runtime_error("cipher list: " + openssl_error());
  SSL_CTX_set_dh_auto(c, 1);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(c, accept_without_verifying, nullptr);
  SSL_CTX_set_session_id_context(c, session_id_context, sizeof session_id_context - 1);
  for (const auto& f : files_) {
    if (SSL_CTX_use_certificate_chain_file(c, f.cert.c_str()) != 1)
      throw std::runtime_error("certificate " + f.cert.string() + ": " + openssl_error());
    if (SSL_CTX_use_PrivateKey_file(c, f.key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("key " + f.key.string() + ": " + openssl_error());
    if (SSL_CTX_check_private_key(c) != 1)
      throw std::runtime_error("key " + f.key.string() + " does not match " + f.cert.string());
  }
  if (customize_) customize_(c);
  return ctx;
}

}  // namespace mxlens::certs
