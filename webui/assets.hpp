// The pages' files (webui/static), embedded in the binary by webui/embed.cmake.
#pragma once

#include <string_view>
#include <vector>

namespace mxlens::webui {

struct asset {
  std::string_view name;  // "report.js"
  std::string_view bytes;
};

const std::vector<asset>& embedded_assets();

}  // namespace mxlens::webui
