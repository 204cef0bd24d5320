// Resource figures of a process we started, read from /proc/<pid>.
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <fstream>
#include <string>

namespace curvebus::test {

// Resident set size in kB (VmRSS), -1 when unreadable.
inline long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Open file descriptors, -1 when unreadable.
inline long fd_count(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  long n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

}  // namespace curvebus::test

namespace curvebus::test {

// Under AddressSanitizer freed memory sits in a quarantine (256 MB by default)
// and RSS only grows: an RSS bound means nothing there.  The sanitizer's own
// leak check at exit (a clean exit status) stands in for it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssMeaningful = false;
#else
constexpr bool kRssMeaningful = true;
#endif
// The stated bound on RSS growth under load.
constexpr long kRssGrowthBoundKb = 20 * 1024;

}  // namespace curvebus::test
