// DKIM verification (RFC 6376, 8301, 8463) on libopendkim, with keys fetched by our resolver
// through the library's key-lookup callback. Judgement stays ours where the library is lenient
// (docs/libraries.md §1): a signature passes only by DKIM_SIG_CHECK, rsa-sha1 fails, and
// key sizes are computed here for RSA and ed25519 alike.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/dns/resolver.hpp"
#include "core/types.hpp"

namespace mxlens::analyzers::dkim {

// Signatures beyond this many are listed, not verified.
inline constexpr int max_verified_signatures = 10;

struct signature {
  core::auth_result result =
      core::auth_result::none;  // pass fail neutral temperror permerror policy
  std::optional<std::string> reason;
  std::string domain;          // d=, A-labels
  std::string domain_unicode;  // the same in U-labels, for people
  std::string selector;
  std::string algorithm;
  std::string identity;                 // i=, or "@d" when absent
  std::optional<std::string> key_type;  // rsa | ed25519
  std::optional<int> key_bits;
  std::optional<std::string> canonicalization;  // "header/body"
  std::vector<std::string> signed_headers;
  std::optional<long long> body_length;  // l=
  std::optional<bool> body_hash_ok;
  std::optional<long long> timestamp;   // t=
  std::optional<long long> expiration;  // x=
  std::string b_prefix;                 // first characters of b=, for header.b
  bool aligned = false;                 // set by the DMARC evaluation

  bool operator==(const signature&) const = default;
};

// The key record's type and size; nullopt fields when the record does not give them.
struct key_facts {
  std::optional<std::string> type;
  std::optional<int> bits;
  std::string problem;  // a malformed or revoked key
};
key_facts inspect_key(std::string_view record);

// tag=value pairs of a tag-list (RFC 6376 §3.2), names and values trimmed; the first of a repeated
// tag is kept.
std::map<std::string, std::string> tags(std::string_view record);

// The items of a colon-separated list (h= of a signature or a key, s= of a key: RFC 6376 §3.5,
// §3.6.1), each trimmed, empty ones left out.
std::vector<std::string> colon_list(std::string_view value);

// Base64 (RFC 6376 §2.4, whitespace ignored); nullopt when it is not valid base64.
std::optional<std::string> base64_decode(std::string_view text);

// The key record a DKIM-Signature value points at ("s._domainkey.d"), or nullopt without s= or d=.
std::optional<std::string> key_name(std::string_view signature_value);

// Verifies every signature of the raw message (CRLF line ends, dot-stuffing removed).
std::vector<signature> verify(dns::lookups& dns, std::string_view raw);

// Starts libopendkim now rather than on the first verification (analysis::preload).
void preload();

// One entry of the report's auth.dkim array, and its inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const signature& s);
signature tag_invoke(boost::json::value_to_tag<signature>, const boost::json::value& v);

}  // namespace mxlens::analyzers::dkim
