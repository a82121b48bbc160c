// The Received chain: the message's Received fields read as RFC 5321 §4.4 writes them (and as
// Postfix, Exim, sendmail, Microsoft and Gmail really do), oldest hop first, with the TLS each hop
// reports. What a hop says is what its writer chose to say: nothing here is verified, and the
// older hops may be written by the sender itself. mxlens writes no Received field of its own: the
// hop into mxlens is the session's (tls.starttls), not the chain's.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxlens::analyzers::message {

struct header_field;

// Bounds: the newest hops are kept (those nearest mxlens, which the sender's own forged ones
// cannot push out), and each field is cut at a character within max_hop_field octets.
inline constexpr std::size_t max_hops = 50;
inline constexpr std::size_t max_hop_field = 256;

struct hop {
  std::optional<std::string> from;  // "mail.example.org (mail.example.org [192.0.2.10])"
  std::optional<std::string> by;    // "mx.example.net (Postfix)"
  std::optional<std::string> with;  // "ESMTPS", "esmtps", "Microsoft SMTP Server"
  // The TLS the hop reports ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", or the
  // TLS type of `with` when it says no more); null when it says it went in clear text, or nothing.
  std::optional<std::string> tls;
  std::optional<std::string> at;  // ISO 8601 (UTC) when the date parses, else as written

  bool operator==(const hop&) const = default;
};

// One Received field's value (after the colon, folded or not).
hop parse_received(std::string_view value);

struct received_chain {
  std::vector<hop> hops;  // oldest first, at most max_hops
  int fields = 0;         // Received fields in the message, also those not kept
};
received_chain read_received(const std::vector<header_field>& fields);

// A hop that names the host it came from (not a loopback address: a content filter on the same
// host is no network hop) and says, by its `with` type, that it was not in TLS (RFC 3848: ESMTP,
// ESMTPA, SMTP, LMTP, UTF8SMTP without "S"), with no TLS annotation.
bool in_clear_text(const hop& h);

// {"from", "by", "with", "tls", "at"} (report.schema.json "received_chain"), and the inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const hop& h);
hop tag_invoke(boost::json::value_to_tag<hop>, const boost::json::value& v);

}  // namespace mxlens::analyzers::message
