// Internationalized domain names (RFC 5890, 5891; RFC 8616 for email authentication): a domain
// read from a message or an envelope, in its two forms. DNS is asked, and domains are compared,
// in A-labels (RFC 8616 §3: "xn--e1afmkfd.xn--p1ai"); people read U-labels ("пример.рф"). Not a
// validator of host names: an all-ASCII name without an "xn--" label is only lowercased, as the
// analyzers read such names before, underscores and empty labels included.
#pragma once

#include <string>
#include <string_view>

namespace mxlens::analyzers::dns {

struct idn_forms {
  std::string ascii;    // A-labels, lowercase, no final dot
  std::string unicode;  // U-labels; equal to `ascii` for a name with no IDN label
  std::string problem;  // why the name is no valid IDN; both forms are then the name lowercased

  bool valid() const { return problem.empty(); }
  // "пример.рф (xn--e1afmkfd.xn--p1ai)", or the one form a name without IDN labels has.
  std::string shown() const;
};

// UTS #46 nontransitional processing, which IDNA2008 lookups use (RFC 5891 §5, RFC 5895's
// mapping of case and width), by libidn2. A-labels given are checked as strictly as U-labels:
// bad Punycode or a code point IDNA2008 disallows makes the name invalid.
idn_forms idn(std::string_view name);

}  // namespace mxlens::analyzers::dns
