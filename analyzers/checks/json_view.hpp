// Reading report JSON in the evaluators: missing or mistyped fields read as empty.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "analyzers/checks/checks.hpp"

namespace mxlens::analyzers::checks {

inline const boost::json::value* field(const boost::json::object& o, std::string_view key) {
  return o.if_contains(key);
}
inline std::string str(const boost::json::object& o, std::string_view key) {
  auto* v = field(o, key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
inline std::optional<std::string> opt_str(const boost::json::object& o, std::string_view key) {
  auto* v = field(o, key);
  if (v && v->is_string()) return std::string(v->as_string());
  return std::nullopt;
}
inline std::optional<bool> opt_bool(const boost::json::object& o, std::string_view key) {
  auto* v = field(o, key);
  if (v && v->is_bool()) return v->as_bool();
  return std::nullopt;
}
inline std::int64_t num(const boost::json::object& o, std::string_view key, std::int64_t def = 0) {
  auto* v = field(o, key);
  if (v && v->is_int64()) return v->as_int64();
  if (v && v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  if (v && v->is_double()) return static_cast<std::int64_t>(v->as_double());
  return def;
}
inline const boost::json::object& obj(const boost::json::object& o, std::string_view key) {
  static const boost::json::object empty;
  auto* v = field(o, key);
  return v && v->is_object() ? v->as_object() : empty;
}
inline const boost::json::array& arr(const boost::json::object& o, std::string_view key) {
  static const boost::json::array empty;
  auto* v = field(o, key);
  return v && v->is_array() ? v->as_array() : empty;
}
inline std::vector<std::string> strings(const boost::json::object& o, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& v : arr(o, key))
    if (v.is_string()) out.emplace_back(v.as_string());
  return out;
}

inline check make(std::string id, std::string status, std::string summary,
                  boost::json::value evidence = nullptr, std::optional<std::string> fix = {}) {
  return {std::move(id), std::move(status), std::move(summary), std::move(evidence),
          std::move(fix)};
}

// Appends the checks of one evaluator to those of the others.
inline void append(std::vector<check>& to, std::vector<check> more) {
  to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace mxlens::analyzers::checks
