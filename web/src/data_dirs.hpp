// Where curvebus-web finds the files it serves, and how a request path maps
// to one of them without leaving its folder.
//
// Run from the build tree (the executable lies under the build directory it
// was compiled in), the files are the source tree's: web/static, proto/ and
// web/node_modules.  Installed, they lie beside the executable:
// <prefix>/share/curvebus/{web,proto,web-vendor}.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace curvebus::web {

struct DataDirs {
  std::string static_dir, proto_dir, web_dir, installed_vendor_dir;
  bool from_build_tree = false;
};
DataDirs default_data_dirs();

// The file under `root` that the URL path `path` (no query string, still
// percent-encoded) names, or nullopt when the path is refused: a ".." or "."
// segment, a hidden name (leading '.'), a backslash, a NUL or a bad
// percent-escape, or a canonical path outside `root` (a symbolic link out).
// A path naming a folder gives its index.html.  The file need not exist:
// the caller answers 404 then.
enum class PathCheck { kOk, kRefused, kNotFound };
struct ResolvedPath {
  PathCheck check = PathCheck::kRefused;
  std::string file;  // canonical, when kOk
};
ResolvedPath resolve_under(const std::string& root, std::string_view path);

// The Content-Type for a file name ("text/javascript; charset=utf-8", ...);
// "application/octet-stream" when the extension is not known.
std::string content_type_for(std::string_view file);

}  // namespace curvebus::web
