// Plain domain types shared by every module: what one SMTP session and one delivery were.
// No I/O, no behaviour beyond small helpers; the JSON form lives in json.hpp. Field names follow
// schema/report.schema.json so that the JSON form is a direct mapping.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mxlens::core {

// Milliseconds since the Unix epoch: the one time representation stored and serialised.
using unix_ms = std::int64_t;

unix_ms now_ms();
// RFC 3339 UTC with milliseconds, e.g. 2026-11-22T10:00:00.123Z.
std::string format_time(unix_ms t);

// A source of the current time: the seam that lets tests move time (retention, expiry).
class clock {
 public:
  virtual ~clock() = default;
  virtual unix_ms now() const = 0;
};

class system_clock final : public clock {
 public:
  unix_ms now() const override { return now_ms(); }
};

struct client_certificate {
  std::string subject;
  std::string issuer;
  std::string not_after;  // RFC 3339
  std::string sha256;     // hex of the DER encoding

  bool operator==(const client_certificate&) const = default;
};

// What the client offered in its ClientHello, whether or not the handshake then succeeded.
struct client_hello {
  std::vector<std::string> versions;  // supported_versions, or the legacy version alone
  std::vector<std::string> ciphers;   // IANA names where known, else 0xNNNN; GREASE left out
  std::vector<std::string> groups;
  std::vector<std::string> alpn;
  std::optional<std::string> sni;
  std::string fingerprint;  // JA4

  bool operator==(const client_hello&) const = default;
};

// What kind of TLS failure it was (report.schema.json tls.failed_handshakes[].class), for people
// and for sending systems that branch on it.
enum class failure_class {
  not_tls,                   // the client sent something that is not TLS at all
  implicit_tls,              // a ClientHello where plaintext SMTP was expected
  plaintext_after_starttls,  // SMTP commands after "220 Ready to start TLS"
  version,                   // no protocol version in common
  cipher,                    // no cipher suite in common
  certificate_rejected,      // the client refused this server's certificate
  aborted,                   // the client closed or reset the connection mid-handshake
  timeout,                   // the handshake did not finish in time
  protocol,                  // a malformed or unexpected TLS message
  other,
};

struct failed_handshake {
  unix_ms at = 0;
  std::string client_ip;
  std::string reason;  // OpenSSL's reason text
  std::optional<core::client_hello> client_hello;
  failure_class kind = failure_class::other;
  std::string session;  // the session that failed ("" in records of the first schemas)
  // Set in a delivery's list: how long before the delivery's connection began it failed.
  std::optional<double> seconds_before;

  bool operator==(const failed_handshake&) const = default;
};

struct tls_facts {
  bool offered = false;  // STARTTLS was advertised to this client
  bool used = false;     // the session is inside TLS
  std::optional<std::string> version;
  std::optional<std::string> cipher;
  std::optional<int> bits;
  std::optional<std::string> group;
  std::optional<std::string> sni;
  std::optional<std::string> alpn;
  std::optional<core::client_certificate> client_certificate;
  std::optional<core::client_hello> client_hello;
  std::vector<failed_handshake> failed_handshakes;

  bool operator==(const tls_facts&) const = default;
};

struct connection_facts {
  std::string client_ip;
  std::uint16_t client_port = 0;
  std::string local_ip;
  std::uint16_t local_port = 0;
  bool ipv6 = false;
  std::string helo;
  bool esmtp = false;
  // Spoke before the greeting, or sent ahead where PIPELINING does not allow it (RFC 2920 §3.1).
  bool early_talker = false;
  // How long the greeting was held back to see whether the client talks first; 0: not at all,
  // so talking before the greeting was not tested.
  std::uint32_t greet_pause_ms = 0;
  unix_ms started_at = 0;

  bool operator==(const connection_facts&) const = default;
};

enum class direction { client, server, tls };

struct transcript_line {
  double t_ms = 0;  // since the connection was accepted
  direction dir = direction::client;
  std::string line;

  bool operator==(const transcript_line&) const = default;
};

// Facts about the DATA bytes that a later check grades; the message is accepted regardless.
struct data_facts {
  std::uint64_t bare_lf = 0;     // LF not preceded by CR
  std::uint64_t bare_cr = 0;     // CR not followed by LF
  std::uint64_t long_lines = 0;  // lines over 998 octets (RFC 5322 §2.1.1)
  std::uint64_t max_line = 0;    // longest line seen, in octets without CRLF
  std::uint64_t eight_bit = 0;   // octets >= 0x80
  std::uint64_t nul = 0;         // NUL octets
  std::uint64_t lines = 0;

  bool operator==(const data_facts&) const = default;
};

// The result of an authentication method (RFC 8601 §2.7): spf, dkim, dmarc and iprev each use
// some of these; the tokens are the wire spelling.
enum class auth_result { none, pass, fail, softfail, neutral, temperror, permerror, policy };

enum class body_type { none, seven_bit, eight_bit_mime, binary_mime };

struct envelope {
  std::string mail_from;  // without angle brackets; empty for the null sender
  std::vector<std::string> rcpt_to;
  body_type body = body_type::none;  // as declared with BODY=
  bool smtputf8 = false;
  std::optional<std::uint64_t> declared_size;  // SIZE= (RFC 1870)

  bool operator==(const envelope&) const = default;
};

// One accepted message for one test, with everything the session knew when the data ended.
struct delivery {
  std::string test_id;
  std::int64_t number = 0;  // 1, 2, … within the test; assigned by storage
  unix_ms received_at = 0;
  std::string session_id;
  connection_facts connection;
  tls_facts tls;
  core::envelope envelope;
  core::data_facts data;
  std::vector<transcript_line> transcript;
  std::string raw;  // the message as received, dot-unstuffing undone, nothing added

  bool operator==(const delivery&) const = default;
};

// One connection, recorded when it ends, whether or not it delivered anything.
struct session_record {
  std::string id;
  connection_facts connection;
  tls_facts tls;
  unix_ms ended_at = 0;
  std::uint32_t messages = 0;
  std::string outcome;  // quit, dropped, timeout, tls_failed, limit, shutdown, refused
  std::vector<transcript_line> transcript;

  bool operator==(const session_record&) const = default;
};

// Connections that said nothing worth a session row of their own (no EHLO or HELO, no TLS, no
// message: a connect and close, a refusal), counted per client address and minute instead, so
// that a flood of them costs a row a minute, not a row each.
struct session_count {
  std::string client_ip;
  unix_ms minute = 0;  // the start of the minute
  std::int64_t connections = 0;
  std::int64_t refused = 0;

  bool operator==(const session_count&) const = default;
};

struct test_info {
  std::string id;
  std::string address;
  unix_ms created_at = 0;
  unix_ms expires_at = 0;
  std::string label;
  std::string profile = "accept";
  bool bulk = false;  // judge its deliveries as a bulk sender's
  // The sending addresses the test expects (canonical prefixes, core/prefix.hpp): their sessions
  // are shown to it, failed handshakes included.
  std::vector<std::string> expect_from;

  bool operator==(const test_info&) const = default;
};

// A report's score out of 10 (CHECKS.md "Score"): passed = passes; errors = checks that could not
// be evaluated (each costs its weight, like a fail); total = passes, warns, fails and errors. A
// report whose analysis failed, or where no check with a weight could be evaluated, is unscored:
// it has no value, and `unscored` says why. Never a 10 for what was not judged.
struct score {
  std::optional<double> value;  // none: unscored
  int passed = 0;
  int total = 0;
  int errors = 0;
  std::optional<std::string> unscored;  // why there is no value; set exactly when there is none

  bool operator==(const score&) const = default;
};

// What the receiver answered at the end of DATA, and under which reply profile.
struct disposition {
  int code = 250;
  std::string enhanced;  // "2.0.0"
  std::string text;      // the reply's first line without the codes
  std::string profile = "accept";
  std::optional<std::string> reason;  // why this reply, when it is not the profile's plain accept

  bool operator==(const disposition&) const = default;
};

// The little of an analysis the server reads (the worker's first answer frame): the score, the
// results of the three authentication methods, and what went wrong while analyzing.
struct analysis_summary {
  core::score score;
  auth_result spf = auth_result::none;
  std::vector<auth_result> dkim;  // one per signature
  auth_result dmarc = auth_result::none;
  std::vector<std::string> errors;

  bool operator==(const analysis_summary&) const = default;
};

// A one-line summary of a delivery, for listings.
struct delivery_summary {
  std::int64_t number = 0;
  unix_ms received_at = 0;
  std::string client_ip;
  std::string mail_from;
  std::uint64_t size = 0;
  std::optional<std::string> tls_version;

  bool operator==(const delivery_summary&) const = default;
};

// What a test's listing and its per-source totals need of one analyzed delivery, stored beside
// the report so that a test with many deliveries is shown without reading any report.
struct report_line {
  std::int64_t number = 0;
  std::string received_at;  // as in the report
  std::string client_ip;
  std::string mail_from;
  std::optional<std::string> tls_version;  // null: the message came in plaintext
  std::optional<std::string> tls_cipher;
  std::int64_t failed_handshakes = 0;  // in the delivery's own session
  std::string score_json;              // the report's "score" object
  std::string disposition_json;        // the report's "disposition" object
  bool spf_pass = false;
  bool dkim_pass = false;  // at least one signature passed
  bool dmarc_pass = false;

  bool operator==(const report_line&) const = default;
};

}  // namespace mxlens::core
