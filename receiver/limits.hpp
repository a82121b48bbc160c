// Limits the receiver enforces on every peer. Defaults are named here; an operator tunes them with
// the flags that app/ maps onto this struct.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace mxlens::receiver {

// RFC 5321 §4.5.3.1.4 allows 512 octets; extension parameters (RFC 1870, 6531, …) need more.
inline constexpr std::size_t default_max_command_line = 2048;
// RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted; more are refused with 452.
inline constexpr std::size_t default_max_recipients = 100;
inline constexpr std::uint64_t default_max_message_size = 50ull * 1024 * 1024;
// The octets of messages all sessions hold at once (receiver/byte_budget.hpp): twenty messages of
// the largest default size.
inline constexpr std::uint64_t default_max_data_in_flight = 20 * default_max_message_size;
// RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes for the next command.
inline constexpr std::chrono::seconds default_idle_timeout{300};
inline constexpr std::chrono::seconds default_max_session_time{1800};
inline constexpr std::chrono::seconds default_tls_handshake_timeout{30};
// The greeting is held back this long to see whether the client talks first (RFC 5321 §4.3.1),
// as Postfix's postscreen_greet_wait does: without it, early talking is caught only by chance.
inline constexpr std::chrono::milliseconds default_greet_pause{250};
inline constexpr std::chrono::milliseconds max_greet_pause{5000};
inline constexpr std::size_t default_max_connections = 1000;
inline constexpr std::size_t default_max_connections_per_ip = 50;
// Connections from one network (an IPv4 /24, an IPv6 /64): one host's many addresses count as
// one sender.
inline constexpr std::size_t default_max_connections_per_network = 100;
// Connections a minute from one client IP and from one network, as Postfix's anvil counts them
// (smtpd_client_connection_rate_limit); 0: no limit, Postfix's default too, since one sending
// pool behind one address may open thousands a minute.
inline constexpr std::size_t default_max_connection_rate = 0;
// Of --max-connections, the share kept for clients whose network holds fewer than
// `reserve_holders_below` connections: while others hold every other slot, a newcomer still
// gets in.
inline constexpr std::size_t reserved_share_percent = 10;
inline constexpr std::size_t reserve_holders_below = 2;
// Under stress (this share of --max-connections in use), as Postfix's stress-dependent
// settings: a command line must come within `stress_idle_timeout`, and fewer junk commands and
// errors are borne.
inline constexpr std::size_t stress_share_percent = 75;
inline constexpr std::chrono::seconds stress_idle_timeout{10};
inline constexpr std::size_t stress_max_junk_commands = 10;
inline constexpr std::size_t stress_max_errors = 5;
inline constexpr std::size_t default_max_messages_per_connection = 1000;
// Rejected commands after which the session is closed with 421.
inline constexpr std::size_t default_max_errors = 20;
// NOOP, RSET, HELP and VRFY: commands that cost a reply and move no mail. This many are answered
// without a message accepted in between, as Postfix's smtpd_junk_command_limit counts them; the
// next one gets 421 and the connection is closed.
inline constexpr std::size_t default_max_junk_commands = 100;
// A single line of DATA longer than this makes the message refused. RFC 5322 says 998; longer
// lines are accepted and recorded for grading up to this safety cap.
inline constexpr std::size_t default_max_data_line = std::size_t{1024} * 1024;
// Transcript kept per session, and per delivery (the session's prologue and its transaction): at
// most this many lines and octets; later lines are counted, not kept (receiver/transcript.hpp).
inline constexpr std::size_t max_transcript_lines = 5000;
inline constexpr std::size_t max_transcript_bytes = std::size_t{64} * 1024;
// A line counts as its text, escaped as JSON stores it, plus this much for its time, direction
// and framing: a flood of short lines is bounded as a flood of long ones is.
inline constexpr std::size_t transcript_line_overhead = 48;
// A transcript line is cut to this many octets.
inline constexpr std::size_t max_transcript_line = 1024;

struct limits {
  std::size_t max_command_line = default_max_command_line;
  std::size_t max_recipients = default_max_recipients;
  std::uint64_t max_message_size = default_max_message_size;
  std::chrono::milliseconds idle_timeout = default_idle_timeout;
  std::chrono::milliseconds max_session_time = default_max_session_time;
  std::chrono::milliseconds tls_handshake_timeout = default_tls_handshake_timeout;
  std::chrono::milliseconds greet_pause = default_greet_pause;
  std::size_t max_connections = default_max_connections;
  std::size_t max_connections_per_ip = default_max_connections_per_ip;
  std::size_t max_connections_per_network = default_max_connections_per_network;
  std::size_t max_connection_rate_per_ip = default_max_connection_rate;       // a minute
  std::size_t max_connection_rate_per_network = default_max_connection_rate;  // a minute
  std::size_t max_messages_per_connection = default_max_messages_per_connection;
  std::size_t max_errors = default_max_errors;
  std::size_t max_junk_commands = default_max_junk_commands;
  std::size_t max_data_line = default_max_data_line;
};

}  // namespace mxlens::receiver
