#include "analyzers/dns/idn.hpp"

#include <idn2.h>

#include <cstdlib>
#include <memory>

#include "core/test_id.hpp"
#include "core/text.hpp"

namespace mxlens::analyzers::dns {

namespace {

using idn2_string = std::unique_ptr<char, decltype(&std::free)>;

// RFC 5890 §2.3.1: an A-label starts with the ACE prefix "xn--", in any case.
bool has_ace_label(const std::string& lower) {
  return lower.rfind("xn--", 0) == 0 || lower.find(".xn--") != std::string::npos;
}

bool all_ascii(std::string_view name) {
  for (unsigned char c : name)
    if (c >= 0x80) return false;
  return true;
}

idn_forms invalid(const std::string& name, std::string_view why) {
  idn_forms out{name, name, {}};
  out.problem = "'" + core::printable(name) +
                "' is not a valid internationalized domain name: " + std::string(why);
  return out;
}

}  // namespace

std::string idn_forms::shown() const {
  return unicode == ascii ? ascii : unicode + " (" + ascii + ")";
}

idn_forms idn(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string lower = core::lowercase(std::string(name));
  if (all_ascii(lower) && !has_ace_label(lower)) return {lower, lower, {}};
  if (!core::is_utf8(lower)) return invalid(lower, "it is not UTF-8");

  char* a = nullptr;
  int rc = idn2_to_ascii_8z(lower.c_str(), &a, IDN2_NONTRANSITIONAL);
  idn2_string ascii(a, &std::free);
  if (rc != IDN2_OK) return invalid(lower, idn2_strerror(rc));
  char* u = nullptr;
  rc = idn2_to_unicode_8z8z(ascii.get(), &u, 0);
  idn2_string unicode(u, &std::free);
  if (rc != IDN2_OK) return invalid(lower, idn2_strerror(rc));
  return {ascii.get(), unicode.get(), {}};
}

}  // namespace mxlens::analyzers::dns
