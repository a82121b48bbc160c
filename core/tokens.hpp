// An enum class spelled on the wire by tokens: one table per enum gives both directions, so that
// a value and its token can never disagree between the serializer and its inverse.
#pragma once

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace mxlens::core {

template <class E, std::size_t N>
struct token_table {
  std::array<std::pair<E, std::string_view>, N> entries;
  std::string_view what;  // "a check status", for the error of an unknown token

  // The value's token; "" for a value the table leaves out.
  constexpr std::string_view token(E value) const {
    for (const auto& [v, t] : entries)
      if (v == value) return t;
    return {};
  }
  // The token's value; an unknown token throws std::invalid_argument.
  E value(std::string_view token) const {
    for (const auto& [v, t] : entries)
      if (t == token) return v;
    throw std::invalid_argument("not " + std::string(what) + ": '" + std::string(token) + "'");
  }
};

}  // namespace mxlens::core
