#include "data_dirs.hpp"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

namespace curvebus::web {

namespace {

std::string canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return {};
  return buf;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool inside(const std::string& root, const std::string& path) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          (root.back() == '/' || path[root.size()] == '/'));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

DataDirs default_data_dirs() {
  DataDirs d;
  const std::string exe = canonical("/proc/self/exe");
  const std::string build = canonical(CURVEBUS_WEB_BUILD_DIR);
  d.from_build_tree = !exe.empty() && !build.empty() && inside(build, exe);
  if (d.from_build_tree) {
    const std::string src = CURVEBUS_WEB_SOURCE_DIR;
    d.static_dir = src + "/web/static";
    d.proto_dir = src + "/proto";
    d.web_dir = src + "/web";
    return d;
  }
  // <prefix>/bin/curvebus-web -> <prefix>/share/curvebus
  std::string prefix = exe.substr(0, exe.rfind('/'));
  prefix = prefix.substr(0, prefix.rfind('/'));
  const std::string share = prefix + "/share/curvebus";
  d.static_dir = share + "/web";
  d.proto_dir = share + "/proto";
  d.web_dir = share;
  d.installed_vendor_dir = share + "/web-vendor";
  return d;
}

ResolvedPath resolve_under(const std::string& root, std::string_view path) {
  ResolvedPath out;
  if (path.empty() || path.front() != '/') return out;
  // Decode percent-escapes first, so "%2e%2e" is judged as "..".
  std::string decoded;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      decoded += path[i];
      continue;
    }
    if (i + 2 >= path.size()) return out;
    const int hi = hex_digit(path[i + 1]), lo = hex_digit(path[i + 2]);
    if (hi < 0 || lo < 0) return out;
    decoded += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  std::string relative;
  std::size_t start = 1;
  while (start <= decoded.size()) {
    std::size_t end = decoded.find('/', start);
    if (end == std::string::npos) end = decoded.size();
    const std::string segment = decoded.substr(start, end - start);
    if (!segment.empty()) {
      if (segment.front() == '.') return out;  // "..", "." and hidden files
      if (segment.find('\\') != std::string::npos || segment.find('\0') != std::string::npos)
        return out;
      relative += "/" + segment;
    }
    start = end + 1;
  }
  const std::string real_root = canonical(root);
  if (real_root.empty()) {
    out.check = PathCheck::kNotFound;
    return out;
  }
  std::string candidate = real_root + relative;
  if (is_dir(candidate)) candidate += "/index.html";
  const std::string real = canonical(candidate);
  if (real.empty()) {
    out.check = PathCheck::kNotFound;
    return out;
  }
  if (!inside(real_root, real)) return out;  // a symbolic link out of the root
  if (is_dir(real)) {
    out.check = PathCheck::kNotFound;
    return out;
  }
  out.check = PathCheck::kOk;
  out.file = real;
  return out;
}

std::string content_type_for(std::string_view file) {
  struct Type {
    const char* ext;
    const char* type;
  };
  static const Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".proto", "text/plain; charset=utf-8"},
      {".txt", "text/plain; charset=utf-8"},
      {".md", "text/plain; charset=utf-8"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".ico", "image/x-icon"},
      {".webmanifest", "application/manifest+json"},
      {".wasm", "application/wasm"},
  };
  const std::size_t slash = file.rfind('/');
  const std::size_t dot = file.rfind('.');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    const std::string_view ext = file.substr(dot);
    for (const auto& t : kTypes)
      if (ext == t.ext) return t.type;
  }
  return "application/octet-stream";
}

}  // namespace curvebus::web
