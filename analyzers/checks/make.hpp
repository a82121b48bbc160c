// What the evaluators build checks with.
#pragma once

#include <boost/json/value.hpp>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "analyzers/checks/checks.hpp"

namespace mxlens::analyzers::checks {

inline check make(std::string id, checks::status s, std::string summary,
                  boost::json::value evidence = nullptr, std::optional<std::string> fix = {}) {
  return {std::move(id), s, std::move(summary), std::move(evidence), std::move(fix)};
}

// Appends the checks of one evaluator to those of the others.
inline void append(std::vector<check>& to, std::vector<check> more) {
  to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace mxlens::analyzers::checks
