#include "vendor.hpp"

#include <sys/stat.h>

namespace curvebus::web {

namespace {

const VendorEntry kVendorTable[] = {
#include "vendor_table.inc"
};

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

const VendorEntry* find_vendor(std::string_view name) {
  for (const auto& e : kVendorTable)
    if (name == e.name) return &e;
  return nullptr;
}

std::string vendor_file(const Options& options, const VendorEntry& entry) {
  if (!options.vendor_dir.empty() && is_file(options.vendor_dir + "/" + entry.name))
    return options.vendor_dir + "/" + entry.name;
  if (!options.installed_vendor_dir.empty() &&
      is_file(options.installed_vendor_dir + "/" + entry.name))
    return options.installed_vendor_dir + "/" + entry.name;
  const std::string path = entry.path;
  const std::string file = path.front() == '/' ? path : options.web_dir + "/" + path;
  return is_file(file) ? file : std::string();
}

}  // namespace curvebus::web
