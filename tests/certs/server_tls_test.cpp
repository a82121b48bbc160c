#include "certs/server_tls.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "receiver/tls_inspect.hpp"

using namespace mxlens;

namespace {

template <class T, void (*F)(T*)>
struct deleter {
  void operator()(T* p) const { F(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509, X509_free>>;
using ssl_ptr = std::unique_ptr<SSL, deleter<SSL, SSL_free>>;
using ctx_ptr = std::unique_ptr<SSL_CTX, deleter<SSL_CTX, SSL_CTX_free>>;

pkey_ptr ec_key() { return pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

void set_name(X509_NAME* name, const char* cn) {
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
}

// A certificate for `subject` issued by `issuer`, signed with `signer`, valid between the two
// offsets from now (in days).
x509_ptr certificate(EVP_PKEY* key, const char* subject, const char* issuer, EVP_PKEY* signer,
                     long from_days, long to_days) {
  x509_ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), static_cast<int>(from_days), 0, nullptr);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(to_days), 0, nullptr);
  X509_set_pubkey(cert.get(), key);
  set_name(X509_get_subject_name(cert.get()), subject);
  set_name(X509_get_issuer_name(cert.get()), issuer);
  X509_sign(cert.get(), signer, EVP_sha256());
  return cert;
}

// One step of a side's handshake: done, waiting for the other side, or failed, as SSL_get_error
// tells it to Asio (an error left in OpenSSL's queue turns a wait into a failure).
enum class step { done, waiting, failed };
step advance(SSL* ssl) {
  const int r = SSL_do_handshake(ssl);
  if (r == 1) return step::done;
  return SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ ? step::waiting : step::failed;
}

// Appends what `from` wrote to `pending`, and gives `to` the next piece of it: the bytes come in
// pieces, as from a socket, and each side goes on with what has come.
void carry(SSL* from, std::string& pending, SSL* to) {
  char buf[16384];
  int n = 0;
  while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0) pending.append(buf, n);
  constexpr std::size_t piece = 512;
  const auto size = std::min(pending.size(), piece);
  if (size > 0) BIO_write(SSL_get_rbio(to), pending.data(), static_cast<int>(size));
  pending.erase(0, size);
}

// A handshake over memory: true when both sides completed it.
bool handshake(SSL* client, SSL* server) {
  std::string to_server;
  std::string to_client;
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 1000; ++round) {
    for (auto [ssl, done] : {std::pair{client, &client_done}, std::pair{server, &server_done}}) {
      if (*done) continue;
      const auto s = advance(ssl);
      if (s == step::failed) return false;
      *done = s == step::done;
    }
    if (client_done && server_done && to_server.empty() && to_client.empty()) return true;
    carry(client, to_server, server);
    carry(server, to_client, client);
  }
  return false;
}

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string name = (std::filesystem::temp_directory_path() / "mxlens-certs-XXXXXX").string();
    REQUIRE(::mkdtemp(name.data()));
    path = name;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// The umask, for a scope.
struct umask_scope {
  mode_t old;
  explicit umask_scope(mode_t mask) : old(::umask(mask)) {}
  ~umask_scope() { ::umask(old); }
  umask_scope(const umask_scope&) = delete;
  umask_scope& operator=(const umask_scope&) = delete;
};

// A limit on the size of files written, for a scope: a write past it fails with EFBIG.
struct file_size_limit {
  rlimit old{};
  void (*old_handler)(int);
  explicit file_size_limit(rlim_t octets) : old_handler(std::signal(SIGXFSZ, SIG_IGN)) {
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit small = old;
    small.rlim_cur = octets;
    ::setrlimit(RLIMIT_FSIZE, &small);
  }
  ~file_size_limit() {
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
  file_size_limit(const file_size_limit&) = delete;
  file_size_limit& operator=(const file_size_limit&) = delete;
};

}  // namespace

TEST_CASE("self-signed keys are 0600 and certificates 0644, whatever the umask", "[certs]") {
  for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    INFO("umask " << std::oct << mask);
    temp_dir dir;
    const umask_scope scope(mask);
    for (const auto& f : certs::ensure_self_signed(dir.path, "mx.test")) {
      CHECK(mode_of(f.key) == 0600);
      CHECK(mode_of(f.cert) == 0644);
    }
  }
}

TEST_CASE("a private key is never readable by others, not even when its write fails", "[certs]") {
  // The write fails part-way (a file size limit), so the file it was writing is there to see:
  // made with the default mode and chmod-ed only at the end, it held part of the key readable
  // by everyone. Created 0600 it never is, and it is removed.
  temp_dir dir;
  const umask_scope scope(0);
  bool failed = false;
  {
    const file_size_limit limit(64);
    try {
      certs::ensure_self_signed(dir.path, "mx.test");
    } catch (const std::exception&) {
      failed = true;
    }
  }
  REQUIRE(failed);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    INFO(entry.path().string());
    CHECK((mode_of(entry.path()) & 077) == 0);
  }
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("a client certificate is recorded without a chain being built or verified", "[certs]") {
  temp_dir dir;
  certs::server_tls tls(certs::ensure_self_signed(dir.path, "mx.test"),
                        receiver::install_client_hello_capture);

  // An expired leaf whose issuer is not sent, and a pile of "issuers" with its issuer's name
  // signed by other keys: verifying them would mean looking for a chain and checking signatures.
  auto ca = ec_key();
  auto key = ec_key();
  auto leaf = certificate(key.get(), "client.example", "missing CA", ca.get(), -30, -1);
  ctx_ptr client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_NONE, nullptr);
  REQUIRE(SSL_CTX_use_certificate(client_ctx.get(), leaf.get()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(client_ctx.get(), key.get()) == 1);
  for (int i = 0; i < 20; ++i) {
    auto other = ec_key();
    auto impostor = certificate(other.get(), "missing CA", "missing CA", other.get(), -1, 30);
    REQUIRE(SSL_CTX_add1_chain_cert(client_ctx.get(), impostor.get()) == 1);
  }

  for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    INFO("TLS version " << std::hex << version);
    ssl_ptr client(SSL_new(client_ctx.get()));
    ssl_ptr server(SSL_new(tls.context().get()));
    SSL_set_max_proto_version(client.get(), version);
    SSL_set_bio(client.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(server.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(server.get());
    ERR_clear_error();
    CHECK(handshake(client.get(), server.get()));

    // Nothing was verified: had OpenSSL looked for the chain, the missing issuer, the failed
    // signatures and the expiry would have left their error here.
    CHECK(SSL_get_verify_result(server.get()) == X509_V_OK);
    core::tls_facts facts;
    receiver::read_session(server.get(), facts);
    REQUIRE(facts.client_certificate);
    CHECK(facts.client_certificate->subject.find("client.example") != std::string::npos);
    CHECK(facts.client_certificate->issuer.find("missing CA") != std::string::npos);
    CHECK(facts.client_certificate->sha256.size() == 64);
  }
}
