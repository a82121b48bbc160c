#include "analyzers/analysis/auth_results.hpp"

#include "core/json.hpp"

namespace mxlens::analyzers {

namespace {

// RFC 2045 token characters: anything else needs a quoted-string.
bool is_token(const std::string& v) {
  if (v.empty()) return false;
  for (unsigned char c : v) {
    if (c <= 32 || c >= 127) return false;
    if (std::string_view("()<>@,;:\\\"/[]?=").find(static_cast<char>(c)) != std::string_view::npos)
      return false;
  }
  return true;
}

std::string quoted(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\r' || c == '\n') continue;
    out += c;
  }
  return out + "\"";
}

// pvalue (§2.2) allows a mailbox or domain as is; other values are quoted when not tokens.
std::string pvalue(const std::string& v) {
  bool plain = !v.empty();
  for (unsigned char c : v) {
    if (c <= 32 || c >= 127 ||
        std::string_view("()<>,;:\\\"[]").find(static_cast<char>(c)) != std::string_view::npos)
      plain = false;
  }
  return plain ? v : quoted(v);
}

std::string comment(const std::string& c) {
  std::string out = "(";
  for (char ch : c) {
    if (ch == '(' || ch == ')' || ch == '\\') out += '\\';
    if (ch == '\r' || ch == '\n') continue;
    out += ch;
  }
  return out + ")";
}

}  // namespace

std::string authentication_results(const std::string& authserv_id,
                                   const std::vector<method_result>& results) {
  std::string out = authserv_id + ";";
  if (results.empty()) return out + " none";
  bool first = true;
  for (const auto& r : results) {
    out += first ? " " : ";\r\n\t";
    first = false;
    out += r.method + "=" + std::string(core::to_string(r.result));
    if (!r.reason.empty()) out += " reason=" + (is_token(r.reason) ? r.reason : quoted(r.reason));
    for (const auto& [name, value] : r.properties) out += " " + name + "=" + pvalue(value);
    if (!r.comment.empty()) out += " " + comment(r.comment);
  }
  return out;
}

}  // namespace mxlens::analyzers
