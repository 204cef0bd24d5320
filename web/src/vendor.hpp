// /vendor/NAME: the third-party scripts the page loads (TweetNaCl-js,
// protobuf.js, ...), served from the machine, never fetched from the internet.
//
// The names and their files are one table, web/src/vendor_files.txt, compiled
// in.  A name is looked up in --vendor-dir first, then in the installed copy
// (share/curvebus/web-vendor/NAME), then at the table's path (absolute: a
// Debian package's file; relative: under the source tree's web/).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "options.hpp"

namespace curvebus::web {

struct VendorEntry {
  const char* name;  // NAME in /vendor/NAME
  const char* path;  // absolute, or relative to web/
  const char* hint;  // where the file comes from, for the 404 text
};

// The table entry for `name`, or nullptr when the name is not in the table.
const VendorEntry* find_vendor(std::string_view name);

// The file serving /vendor/NAME under `options`, or "" when none exists.
std::string vendor_file(const Options& options, const VendorEntry& entry);

}  // namespace curvebus::web
