// Topic names and subscription patterns.
//
// A topic is non-empty UTF-8 text, levels split by '/', at most
// `max_bytes` bytes and `max_levels` levels, with no '+', '#' or NUL
// characters.  A pattern (subscription filter) is a topic in which a level
// may be exactly "+" (any one level) and the last level may be exactly "#"
// (that level and every level below it, including none: "a/#" matches "a").
// As in MQTT, a pattern starting with a wildcard does not match topics
// starting with '$' ($SYS/...): those must be subscribed to by name.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace curvebus {

struct TopicRules {
  std::size_t max_bytes = 256;
  std::size_t max_levels = 16;
};

// Returns an empty string when `topic` is a valid topic, else why not.
std::string check_topic(std::string_view topic, const TopicRules& rules = {});

// Returns an empty string when `pattern` is a valid subscription pattern.
std::string check_pattern(std::string_view pattern, const TopicRules& rules = {});

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates).
bool is_valid_utf8(std::string_view s);

// True when the (valid) pattern matches the (valid) topic.
bool topic_matches(std::string_view pattern, std::string_view topic);

// Splits on '/' (views into `s`, which must outlive the result).
std::vector<std::string_view> split_levels(std::string_view s);

}  // namespace curvebus
