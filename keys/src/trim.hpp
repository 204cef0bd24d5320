// Internal to curvebus_keys: `s` without leading and trailing blanks (space,
// tab, CR, LF), as key files and locator files are read.
#pragma once

#include <string>

namespace curvebus::keys_detail {

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace curvebus::keys_detail
