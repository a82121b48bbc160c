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

// The offer in a ClientHello record that came where no TLS was expected (implicit TLS on the
// STARTTLS port), read by OpenSSL's own parser on memory, stopping before any answer is made.
// `ctx` must have the capture installed. Empty if the record holds no whole ClientHello.
std::optional<core::client_hello> read_client_hello(SSL_CTX* ctx, std::string_view record);

// The negotiated session after a successful handshake (offered/used are the caller's).
void read_session(SSL* ssl, core::tls_facts& facts);

// How far a handshake got, as the wire showed it (OpenSSL's message callback): what the client
// sent, whether this server sent its certificate and the client answered it, and the first alert
// each side sent (RFC 8446 §6, RFC 5246 §7.2). Installed with install_client_hello_capture.
struct handshake_trace {
  std::optional<std::uint8_t> first_record;  // the content type of the client's first record
  bool client_hello = false;                 // the client's ClientHello arrived whole
  bool certificate_sent = false;             // this server sent its Certificate
  bool client_answered = false;  // the client sent a handshake message after that certificate
  std::optional<std::uint8_t> client_alert;
  std::optional<std::uint8_t> server_alert;
};

// The trace of this connection's handshake so far (empty if the callback never ran).
handshake_trace trace_of(SSL* ssl);

// RFC 8446 §6 names: "unknown_ca", "protocol_version"; "alert N" for unassigned values.
std::string alert_name(std::uint8_t description);

// What kind of failure a failed server handshake was: from the alert the client sent, how far
// the handshake got, whether its deadline passed, and OpenSSL's reason where the wire is silent.
core::failure_class classify_failure(std::string_view reason, const handshake_trace& trace,
                                     bool timed_out);

// OpenSSL's reason with what the wire adds for a person: which alert the client sent and when,
// or that it left after this server's certificate without answering it.
std::string explain_failure(std::string reason, const handshake_trace& trace,
                            core::failure_class kind);

}  // namespace mxlens::receiver
