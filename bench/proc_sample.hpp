// Resource samples of a server process the benchmark started, from /proc.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace curvebus::bench {

// Resident set size in kB (VmRSS); 0 when unreadable.
inline long proc_rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 12, '\n');
  }
  return 0;
}

// CPU time used so far (utime + stime), in clock ticks; 0 when unreadable.
inline long proc_cpu_ticks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos || close + 2 > line.size()) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stol(field);
  return ticks;
}

}  // namespace curvebus::bench
