// RFC 7208 §4.6.1, §12: an SPF record read term by term, each with its offset in the record and
// its syntax error, so that a report can point at the term that breaks a record. No DNS here:
// what a term names is looked up by the evaluator (evaluate.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mxlens::analyzers::spf {

enum class term_kind { all, include, a, mx, ptr, ip4, ip6, exists, redirect, exp, unknown };

struct term {
  term_kind kind = term_kind::unknown;
  char qualifier = '+';  // mechanisms: + - ~ ?
  std::string text;      // as written
  std::size_t position = 0;
  std::string domain_spec;         // the macro-string a mechanism or modifier names; empty for none
  std::string network;             // ip4, ip6: the address
  int cidr4 = 32;                  // ip4, a, mx (§5.6)
  int cidr6 = 128;                 // ip6, a, mx
  std::string error;               // the term's syntax error; empty when it has none
  std::size_t error_position = 0;  // in the record

  bool mechanism() const { return kind < term_kind::redirect; }
  // §4.6.4: the terms that cause DNS queries, and count against the limit of 10.
  bool queries_dns() const;
};

struct record {
  std::vector<term> terms;
  std::string error;  // the first syntax error of the record, with its term; empty when none
  std::size_t error_position = 0;
  const term* redirect() const { return modifier(term_kind::redirect); }
  const term* exp() const { return modifier(term_kind::exp); }

 private:
  const term* modifier(term_kind k) const;
};

// §4.5: a TXT record that is an SPF record: "v=spf1", then a space or its end.
bool is_spf_record(std::string_view txt);

// The record's terms and syntax errors; `text` is a TXT record that is_spf_record() accepts.
record parse_record(std::string_view text);

// Why `name`, a domain-spec after macro expansion (§7.3's 253-octet cut already made), is no name
// a mechanism or modifier may ask for (§4.6.1, §7.1): an empty label, a label over 63 octets, a
// single label, an all-numeric top label; empty when it is one. Nothing more is checked after
// expansion: a HELO domain literal in %{h} is a name like any other, that does not exist.
std::string target_error(std::string_view name);

// §4.3: <domain> is a multi-label name whose top label is one (§7.1), so neither an address
// literal nor a one-label host name.
bool usable_domain(std::string_view name);

}  // namespace mxlens::analyzers::spf
