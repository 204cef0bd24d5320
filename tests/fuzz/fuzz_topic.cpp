// libFuzzer harness: topic and pattern checks.  Input: pattern, a NUL byte,
// topic (no NUL: the whole input is used as both).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "curvebus/topic.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nul = in.find('\0');
  std::string_view pattern = in.substr(0, nul);
  std::string_view topic = nul == std::string_view::npos ? in : in.substr(nul + 1);
  (void)curvebus::is_valid_utf8(in);
  (void)curvebus::split_levels(in);
  bool pattern_ok = curvebus::check_pattern(pattern).empty();
  bool topic_ok = curvebus::check_topic(topic).empty();
  if (pattern_ok && topic_ok) {
    (void)curvebus::topic_matches(pattern, topic);
    // A valid topic is a valid pattern that matches itself (unless '$'-rooted
    // rules say otherwise, which only concern wildcards).
    if (curvebus::check_pattern(topic).empty() && !curvebus::topic_matches(topic, topic)) __builtin_trap();
  }
  return 0;
}
