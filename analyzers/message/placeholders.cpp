// Unreplaced template placeholders: the merge fields of the common template languages, left in a
// message because the data or the substitution step failed. Each form is matched only around
// something that reads as a variable name, so that prose, reference markers ("[1]"), Markdown
// links and code ("${1}", "{{ a + b }}") are not findings.
#include <algorithm>
#include <array>
#include <cctype>

#include "analyzers/message/message.hpp"
#include "core/test_id.hpp"

namespace mxlens::analyzers::message {

namespace {

constexpr std::size_t max_name = 64;

bool alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// A letter or '_' first, then letters, digits, '_', '.' or '-': Handlebars, Jinja, Liquid,
// FreeMarker and shell names alike.
bool variable_name(std::string_view s) {
  if (s.empty() || s.size() > max_name || !(alpha(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// Mailchimp's merge tags: *|FNAME|*, *|MC:SUBJECT|*.
bool merge_tag(std::string_view s) {
  return !s.empty() && s.size() <= max_name && alpha(s[0]) &&
         std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '_' || c == ':'; });
}

// "[FirstName]" is a placeholder only when it names a recipient field: brackets also hold
// reference markers, "[sic]", "[PDF]" and link texts.
bool bracket_field(std::string_view s) {
  static constexpr std::array<std::string_view, 14> fields{
      "firstname", "lastname",      "fullname",    "name",       "fname",
      "lname",     "company",       "companyname", "email",      "emailaddress",
      "recipient", "recipientname", "username",    "contactname"};
  if (s.empty() || s.size() > max_name) return false;
  std::string key;
  for (char c : s) {
    if (c == ' ' || c == '_' || c == '-') continue;
    if (!alpha(c)) return false;
    key += c;
  }
  key = core::lowercase(key);
  return std::find(fields.begin(), fields.end(), key) != fields.end();
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// The placeholder that starts at text[i], if one does; its length.
std::size_t placeholder_at(std::string_view text, std::size_t i) {
  struct form {
    std::string_view open, close;
    bool (*name)(std::string_view);
    bool spaces;  // "{{ name }}" is as common as "{{name}}"
  };
  static constexpr std::array<form, 5> forms{{{"{{", "}}", variable_name, true},
                                              {"%%", "%%", variable_name, false},
                                              {"*|", "|*", merge_tag, false},
                                              {"${", "}", variable_name, false},
                                              {"[", "]", bracket_field, false}}};
  for (const auto& f : forms) {
    if (text.compare(i, f.open.size(), f.open) != 0) continue;
    const std::size_t start = i + f.open.size();
    const auto window = text.substr(start, max_name + 2 + f.close.size());
    const auto close = window.find(f.close);
    if (close == std::string_view::npos) continue;
    const auto inner = f.spaces ? trimmed(window.substr(0, close)) : window.substr(0, close);
    if (!f.name(inner)) continue;
    const std::size_t end = start + close + f.close.size();
    if (f.open == "[" && end < text.size() && text[end] == '(') continue;  // a Markdown link
    return end - i;
  }
  return 0;
}

}  // namespace

std::vector<std::string> find_placeholders(std::string_view text, std::size_t limit) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size() && out.size() < limit; ++i) {
    if (std::string_view("{%*$[").find(text[i]) == std::string_view::npos) continue;
    if (const auto n = placeholder_at(text, i); n > 0) {
      std::string found(text.substr(i, n));
      if (std::find(out.begin(), out.end(), found) == out.end()) out.push_back(std::move(found));
      i += n - 1;
    }
  }
  return out;
}

}  // namespace mxlens::analyzers::message
