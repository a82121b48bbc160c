// DMARC (RFC 7489), computed here: libopendmarc 1.4.2 gets alignment wrong (strict mode with the
// PSL, one-letter labels, public suffixes), ignores pct and keeps only the first From address
// (docs/libraries.md §3). Organizational domains come from libpsl and Debian's list.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/dkim/dkim.hpp"
#include "analyzers/dns/resolver.hpp"
#include "analyzers/spf/spf.hpp"

namespace mxlens::analyzers::dmarc {

// The organizational domain (RFC 7489 §3.2): the public suffix plus one label; a name that is
// itself a public suffix is its own. In A-labels, whichever form the domain is given in.
std::string organizational_domain(std::string_view domain);

// Identifier alignment (§3.1): 's' exact match, 'r' same organizational domain; the two domains
// compared in A-labels (RFC 8616 §4), so either may be given in U-labels. An invalid IDN aligns
// with nothing.
bool aligned(std::string_view from_domain, std::string_view auth_domain, char mode);

struct record {
  std::string text;
  std::string policy;  // none quarantine reject
  std::optional<std::string> subdomain_policy;
  int pct = 100;
  // DMARCbis (draft-ietf-dmarc-dmarcbis §4.7): psd= y/n/u ('u' when absent), np= the policy for
  // non-existent subdomains, t= y/n testing (which replaces pct=). Ignored by RFC 7489.
  char psd = 'u';
  std::optional<std::string> np;
  bool testing = false;
  char adkim = 'r';
  char aspf = 'r';
  std::vector<std::string> rua;
  std::vector<std::string> warnings;  // invalid values that were ignored

  bool operator==(const record&) const = default;
};

// Parses one TXT record. Not a DMARC record at all (no leading v=DMARC1): nullopt and `problem`
// empty. A DMARC record that cannot be used (§6.6.3: no valid p= and no valid rua=): nullopt
// and `problem` says why.
std::optional<record> parse(std::string_view text, std::string& problem);
bool is_dmarc_record(std::string_view text);

// What the DMARCbis DNS tree walk (draft-ietf-dmarc-dmarcbis §4.10) finds for the From domain,
// next to RFC 7489's answer; the verdict stays RFC 7489's.
struct bis_result {
  std::string org_domain;  // A-labels
  std::string org_domain_unicode;
  std::optional<std::string> record_domain;
  std::optional<std::string> applied_policy;
  std::optional<std::string> policy_source;  // p sp np
  std::vector<std::string> differs;          // org_domain policy record_domain
  std::vector<std::string> queries;          // the names asked, in order

  bool operator==(const bis_result&) const = default;
};

struct result {
  core::auth_result value = core::auth_result::none;  // pass fail none temperror permerror
  std::optional<std::string> from_domain;             // A-labels (RFC 8616 §4)
  std::optional<std::string> from_domain_unicode;     // the same in U-labels, for people
  std::vector<std::string> from_domains;              // A-labels
  std::optional<std::string> org_domain;
  std::optional<std::string> org_domain_unicode;
  std::optional<std::string> record_domain;  // where the record was found
  std::optional<record> rec;
  std::optional<std::string> applied_policy;  // p or sp, whichever applies to the From domain
  bool spf_aligned = false;
  bool dkim_aligned = false;
  std::string problem;
  std::optional<bis_result> bis;  // absent when no discovery was made

  bool operator==(const result&) const = default;
};

struct inputs {
  int from_fields = 0;
  std::vector<std::string> from_domains;
  const spf::result* spf = nullptr;              // the MAIL FROM (or null-sender HELO) evaluation
  std::vector<dkim::signature>* dkim = nullptr;  // `aligned` is set on each signature
};

result evaluate(dns::lookups& dns, const inputs& in);

// The names the DMARCbis tree walk asks for, from `domain` (A-labels) up (§4.10): the domain,
// then, when it has 8 or more labels, its last 7, then one label fewer each time, down to the
// one-label name; at most 8 names.
std::vector<std::string> tree_walk_names(std::string_view domain);

// The DMARCbis discovery for one From domain (A-labels) through `dns`, compared with `rfc7489`.
bis_result evaluate_bis(dns::lookups& dns, const std::string& from_domain, const result& rfc7489);

// The report's auth.dmarc object, and its inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const result& r);
result tag_invoke(boost::json::value_to_tag<result>, const boost::json::value& v);

}  // namespace mxlens::analyzers::dmarc
