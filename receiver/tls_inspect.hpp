// What the receiver learns about a client's TLS: its ClientHello offer (captured by a callback
// before OpenSSL decides anything, so failed handshakes have it too), a JA4 fingerprint of that
// offer, and the negotiated session (version, cipher, group, SNI, ALPN, client certificate).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace mxlens::receiver {

// The ClientHello as numbers, the way JA4 reads it (GREASE values removed).
struct raw_client_hello {
  std::uint16_t legacy_version = 0;
  std::vector<std::uint16_t> versions;  // supported_versions extension
  std::vector<std::uint16_t> ciphers;
  std::vector<std::uint16_t> extensions;  // in the order sent
  std::vector<std::uint16_t> groups;
  std::vector<std::uint16_t> signature_algorithms;
  std::vector<std::string> alpn;
  std::optional<std::string> sni;
};

// JA4 (FoxIO, BSD-3): "t13d1516h2_8daaf6152771_e5627efa2ab1" for a TLS-over-TCP ClientHello.
std::string ja4(const raw_client_hello& hello);

// Names: OpenSSL's cipher names where OpenSSL knows the suite, IANA group and version names;
// "0xNNNN" otherwise.
std::string version_name(std::uint16_t v);
std::string group_name(std::uint16_t g);
std::string cipher_name(SSL* ssl, std::uint16_t id);

// The readable offer: names and the fingerprint.
core::client_hello describe(SSL* ssl, const raw_client_hello& hello);

// Installs the ClientHello capture on a server context (see certs::server_tls::customizer).
void install_client_hello_capture(SSL_CTX* ctx);

// The offer captured for this connection, if the client got as far as sending one.
std::optional<core::client_hello> captured_client_hello(SSL* ssl);

// The negotiated session after a successful handshake (offered/used are the caller's).
void read_session(SSL* ssl, core::tls_facts& facts);

// What kind of failure a failed server handshake was, from OpenSSL's reason, whether the client
// got as far as a ClientHello, and whether the handshake's deadline passed.
core::failure_class classify_failure(std::string_view reason, bool saw_client_hello,
                                     bool timed_out);

}  // namespace mxlens::receiver
