// Internal to curvebus_keys: pieces shared by the allow-list and the
// revocation list parsers (locations for messages, instants in TOML).
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "curvebus/status.hpp"

namespace curvebus::keys_detail {

// "file:line" of a node, for error messages.
inline std::string where(const std::string& source, const toml::source_region& region) {
  return source + ":" + std::to_string(region.begin.line);
}

// A configuration error at `at` ("file:line"), code CONFIG.
inline Status config_error(const std::string& at, const std::string& what) {
  return Status::Error(at + ": " + what, "CONFIG");
}

// Parses `text` (named `source` in messages) as a document that holds only
// an array of tables named `key` ([[client]], [[revoked]]).  On success
// `*tables` points into `root` at that array, or is null when the document
// has none; errors name file:line (code CONFIG).
Status parse_table_array(std::string_view text, const std::string& source, const char* key,
                         toml::table& root, const toml::array** tables);

// Reads an instant: a TOML offset date-time, a TOML local date (midnight UTC)
// or a string holding an RFC 3339 date-time with offset or a full-date.
// Instants at or before the Unix epoch are refused (0 means "unset" in the
// structures that hold them).  On success stores microseconds since the epoch
// in `out_us` and returns ""; otherwise returns why (without a location).
std::string read_instant(const toml::node& node, std::int64_t& out_us);

// The same for text alone (the string form above).
std::string parse_rfc3339(std::string_view text, std::int64_t& out_us);

// `text` as a TOML basic string, quotes included, every control character,
// quote and backslash escaped.
std::string toml_quote(std::string_view text);

}  // namespace curvebus::keys_detail
