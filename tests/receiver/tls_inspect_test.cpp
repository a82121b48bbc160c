#include "receiver/tls_inspect.hpp"

#include <algorithm>
#include <catch2/catch.hpp>

using namespace mxlens::receiver;

namespace {
raw_client_hello sample() {
  raw_client_hello h;
  h.legacy_version = 0x0303;
  h.versions = {0x0304, 0x0303};
  h.ciphers = {0x1301, 0x1302, 0xc02f};
  h.extensions = {0x0000, 0x000a, 0x000d, 0x0010, 0x002b};
  h.signature_algorithms = {0x0403, 0x0804};
  h.alpn = {"h2"};
  h.sni = "mx.example";
  return h;
}
}  // namespace

TEST_CASE("JA4 part a reads version, SNI, counts and ALPN", "[receiver]") {
  auto f = ja4(sample());
  CHECK(f.substr(0, 10) == "t13d0305h2");
  auto h = sample();
  h.versions.clear();
  h.sni.reset();
  h.alpn.clear();
  CHECK(ja4(h).substr(0, 10) == "t12i030500");
}

TEST_CASE("JA4 hashes do not depend on the order of suites and extensions", "[receiver]") {
  auto a = sample(), b = sample();
  std::reverse(b.ciphers.begin(), b.ciphers.end());
  std::reverse(b.extensions.begin(), b.extensions.end());
  CHECK(ja4(a) == ja4(b));
  b.signature_algorithms = {0x0804, 0x0403};  // signature algorithms keep their order
  CHECK(ja4(a) != ja4(b));
}

TEST_CASE("JA4 of an empty offer uses the zero hashes", "[receiver]") {
  raw_client_hello h;
  h.legacy_version = 0x0301;
  CHECK(ja4(h) == "t10i000000_000000000000_000000000000");
}

TEST_CASE("versions and groups are named", "[receiver]") {
  CHECK(version_name(0x0304) == "TLSv1.3");
  CHECK(version_name(0x0301) == "TLSv1");
  CHECK(group_name(0x001d) == "x25519");
  CHECK(group_name(0x11ec) == "X25519MLKEM768");
  CHECK(group_name(0x1234) == "0x1234");
}

TEST_CASE("a failed handshake is classed by what the wire showed before OpenSSL's words",
          "[receiver]") {
  using mxlens::core::failure_class;
  handshake_trace after_certificate;
  after_certificate.client_hello = after_certificate.certificate_sent = true;

  // The client's alert decides, whatever OpenSSL called it.
  auto alerted = after_certificate;
  alerted.client_alert = 48;
  CHECK(classify_failure("tlsv1 alert unknown ca", alerted, false) ==
        failure_class::certificate_rejected);
  alerted.client_alert = 70;
  CHECK(classify_failure("anything", alerted, false) == failure_class::version);
  alerted.client_alert = 50;
  CHECK(classify_failure("anything", alerted, true) == failure_class::protocol);

  // Gone after the certificate without answering: likely a refused certificate; gone after
  // answering it, or before it: aborted.
  CHECK(classify_failure("unexpected eof while reading", after_certificate, false) ==
        failure_class::certificate_rejected);
  auto answered = after_certificate;
  answered.client_answered = true;
  CHECK(classify_failure("unexpected eof while reading", answered, false) ==
        failure_class::aborted);
  CHECK(classify_failure("unexpected eof while reading", {}, false) == failure_class::aborted);

  // An alert where the ClientHello belongs (its description peeked from the socket): OpenSSL's
  // client with no usable suite says internal_error; a close is an abort; a record whose
  // description is unknown is a protocol error.
  handshake_trace alert_first;
  alert_first.first_record = 21;
  CHECK(classify_failure("unexpected message", alert_first, false) == failure_class::protocol);
  alert_first.client_alert = 80;
  CHECK(classify_failure("unexpected message", alert_first, false) == failure_class::cipher);
  CHECK(explain_failure("unexpected message", alert_first, failure_class::cipher)
            .find("sent alert internal_error instead of a ClientHello: it had no cipher") !=
        std::string::npos);
  alert_first.client_alert = 0;
  CHECK(classify_failure("unexpected message", alert_first, false) == failure_class::aborted);
  alert_first.client_alert = 255;
  CHECK(classify_failure("unexpected message", alert_first, false) == failure_class::protocol);

  // A handshake record too long to be one is a protocol error, not clear text.
  handshake_trace too_long;
  too_long.first_record = 22;
  CHECK(classify_failure("packet length too long", too_long, false) == failure_class::protocol);
  CHECK(classify_failure("packet length too long", {}, false) ==
        failure_class::plaintext_after_starttls);

  // After this server's certificate: handshake_failure from the client is no missing suite, and
  // this server's protocol_version is about a record, not the version chosen.
  auto refused_after = after_certificate;
  refused_after.client_alert = 40;
  CHECK(classify_failure("sslv3 alert handshake failure", refused_after, false) ==
        failure_class::protocol);
  auto record_version = after_certificate;
  record_version.server_alert = 70;
  CHECK(classify_failure("wrong version number", record_version, false) == failure_class::protocol);

  // Where the wire is silent, OpenSSL's words and this server's own alert.
  CHECK(classify_failure("wrong version number", {}, false) ==
        failure_class::plaintext_after_starttls);
  CHECK(classify_failure("handshake timed out", {}, true) == failure_class::timeout);
  handshake_trace refused;
  refused.client_hello = true;
  refused.server_alert = 40;
  CHECK(classify_failure("no shared cipher", refused, false) == failure_class::cipher);
  refused.server_alert = 70;
  CHECK(classify_failure("version too low", refused, false) == failure_class::version);
  CHECK(alert_name(46) == "certificate_unknown");
  CHECK(alert_name(100) == "no_renegotiation");
  CHECK(alert_name(200) == "200");
}
