// What every fuzz target does when an oracle fails: says which, and aborts, which libFuzzer
// reports as a crash and saves the input for (tests/fuzz/README.md).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mxlens::fuzz {

inline void require(bool ok, const char* what, const std::string& detail = {}) {
  if (ok) return;
  std::fprintf(stderr, "fuzz: oracle failed: %s%s%s\n", what, detail.empty() ? "" : ": ",
               detail.c_str());
  std::abort();
}

}  // namespace mxlens::fuzz
