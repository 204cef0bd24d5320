#include "curvebus/topic.hpp"

namespace curvebus {

std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < len) return false;
    for (std::size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return false;  // overlong
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += len;
  }
  return true;
}

namespace {

std::string check_common(std::string_view s, const TopicRules& rules, const char* what) {
  if (s.empty()) return std::string(what) + " is empty";
  if (s.size() > rules.max_bytes)
    return std::string(what) + " is longer than " + std::to_string(rules.max_bytes) + " bytes";
  if (s.find('\0') != std::string_view::npos) return std::string(what) + " contains a NUL byte";
  if (!is_valid_utf8(s)) return std::string(what) + " is not valid UTF-8";
  std::size_t levels = 1;
  for (char c : s)
    if (c == '/') ++levels;
  if (levels > rules.max_levels)
    return std::string(what) + " has more than " + std::to_string(rules.max_levels) + " levels";
  return {};
}

}  // namespace

std::string check_topic(std::string_view topic, const TopicRules& rules) {
  std::string why = check_common(topic, rules, "topic");
  if (!why.empty()) return why;
  if (topic.find_first_of("+#") != std::string_view::npos)
    return "topic contains a wildcard ('+' or '#'); wildcards are for subscriptions";
  return {};
}

std::string check_pattern(std::string_view pattern, const TopicRules& rules) {
  std::string why = check_common(pattern, rules, "pattern");
  if (!why.empty()) return why;
  auto levels = split_levels(pattern);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    std::string_view level = levels[i];
    if (level.find_first_of("+#") == std::string_view::npos) continue;
    if (level == "+") continue;
    if (level == "#") {
      if (i + 1 != levels.size()) return "'#' must be the last level of a pattern";
      continue;
    }
    return "a wildcard must fill a whole level ('a/+/b', 'a/#')";
  }
  return {};
}

bool topic_matches(std::string_view pattern, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && !pattern.empty() &&
      (pattern.front() == '+' || pattern.front() == '#'))
    return false;
  std::size_t p = 0, t = 0;
  while (true) {
    std::size_t pe = pattern.find('/', p);
    std::string_view plevel =
        pattern.substr(p, pe == std::string_view::npos ? std::string_view::npos : pe - p);
    if (plevel == "#") return true;  // matches this level and everything below, or nothing
    if (t > topic.size()) return false;  // topic exhausted, pattern still has levels
    std::size_t te = topic.find('/', t);
    std::string_view tlevel =
        topic.substr(t, te == std::string_view::npos ? std::string_view::npos : te - t);
    if (plevel != "+" && plevel != tlevel) return false;
    bool plast = pe == std::string_view::npos;
    bool tlast = te == std::string_view::npos;
    if (plast && tlast) return true;
    if (plast) return false;  // topic has more levels
    p = pe + 1;
    if (tlast) {
      // Topic is done; only a trailing "#" can still match ("a/#" matches "a").
      return pattern.substr(p) == "#";
    }
    t = te + 1;
  }
}

}  // namespace curvebus
