#include "toml_support.hpp"

#include <cstdio>

#include "curvebus/acl.hpp"

namespace curvebus {

namespace keys_detail {

namespace {

constexpr std::int64_t kMicrosPerSecond = 1000000;

bool leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil algorithm).
std::int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

void civil_from_days(std::int64_t z, int& y, int& m, int& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
}

std::string compose(int y, int mo, int d, int h, int mi, int s, std::int64_t micros,
                    int offset_minutes, std::int64_t& out_us) {
  if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
    return "not a calendar date";
  if (h > 23 || mi > 59 || s > 59) return "not a time of day (00:00:00 to 23:59:59)";
  if (offset_minutes <= -24 * 60 || offset_minutes >= 24 * 60) return "offset out of range";
  const std::int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
                               static_cast<std::int64_t>(offset_minutes) * 60;
  const std::int64_t us = seconds * kMicrosPerSecond + micros;
  if (us <= 0) return "must be after 1970-01-01T00:00:00Z";
  out_us = us;
  return {};
}

// Reads exactly `n` digits at `pos`.
bool digits(std::string_view text, std::size_t& pos, std::size_t n, int& out) {
  if (pos + n > text.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

const char* const kInstantForms =
    "expected an offset date-time (2027-01-01T00:00:00Z), a date (2027-01-01) or an RFC 3339 "
    "string";

// Appends the UTF-8 encoding of `cp`.
void put_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one UTF-8 scalar value at `pos`; false (and pos advanced by one) on
// a malformed, overlong or surrogate sequence.
bool next_utf8(std::string_view s, std::size_t& pos, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  std::size_t len = 0;
  std::uint32_t min = 0;
  if (b0 < 0x80) {
    cp = b0;
    ++pos;
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++pos;
    return false;
  }
  if (pos + len > s.size()) {
    ++pos;
    return false;
  }
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return false;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++pos;
    return false;
  }
  pos += len;
  return true;
}

}  // namespace

std::string parse_rfc3339(std::string_view text, std::int64_t& out_us) {
  std::size_t pos = 0;
  int y = 0, mo = 0, d = 0;
  if (!digits(text, pos, 4, y) || !expect(text, pos, '-') || !digits(text, pos, 2, mo) ||
      !expect(text, pos, '-') || !digits(text, pos, 2, d))
    return kInstantForms;
  if (pos == text.size()) return compose(y, mo, d, 0, 0, 0, 0, 0, out_us);  // full-date
  if (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ') return kInstantForms;
  ++pos;
  int h = 0, mi = 0, s = 0;
  if (!digits(text, pos, 2, h) || !expect(text, pos, ':') || !digits(text, pos, 2, mi) ||
      !expect(text, pos, ':') || !digits(text, pos, 2, s))
    return kInstantForms;
  std::int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t n = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (n < 6) micros = micros * 10 + (text[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return kInstantForms;
    for (std::size_t i = n; i < 6; ++i) micros *= 10;
  }
  if (pos >= text.size()) return "an RFC 3339 date-time needs an offset (Z or +HH:MM)";
  int offset = 0;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!digits(text, pos, 2, oh) || !expect(text, pos, ':') || !digits(text, pos, 2, om) ||
        oh > 23 || om > 59)
      return kInstantForms;
    offset = sign * (oh * 60 + om);
  } else {
    return kInstantForms;
  }
  if (pos != text.size()) return kInstantForms;
  return compose(y, mo, d, h, mi, s, micros, offset, out_us);
}

std::string read_instant(const toml::node& node, std::int64_t& out_us) {
  if (const auto* dt = node.as_date_time()) {
    const toml::date_time& v = dt->get();
    if (!v.offset)
      return "a date-time needs an offset (Z or +HH:MM); write 2027-01-01T00:00:00Z for UTC";
    return compose(v.date.year, v.date.month, v.date.day, v.time.hour, v.time.minute, v.time.second,
                   static_cast<std::int64_t>(v.time.nanosecond / 1000), v.offset->minutes, out_us);
  }
  if (const auto* date = node.as_date()) {
    const toml::date& v = date->get();
    return compose(v.year, v.month, v.day, 0, 0, 0, 0, 0, out_us);
  }
  if (const auto* text = node.as_string()) return parse_rfc3339(text->get(), out_us);
  return kInstantForms;
}

std::string toml_quote(std::string_view text) {
  std::string out = "\"";
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::uint32_t cp = 0;
    if (!next_utf8(text, pos, cp)) cp = 0xFFFD;  // TOML text must be UTF-8
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (cp < 0x20 || cp == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(cp));
          out += buf;
        } else {
          put_utf8(out, cp);
        }
    }
  }
  out += "\"";
  return out;
}

Status parse_table_array(std::string_view text, const std::string& source, const char* key,
                         toml::table& root, const toml::array** tables) {
  *tables = nullptr;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::Error(
        source + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
        "CONFIG");
  }
  for (auto&& [k, node] : root) {
    if (k.str() != key)
      return Status::Error(where(source, node.source()) + ": unknown key '" + std::string(k.str()) +
                               "' (expected [[" + key + "]] tables)",
                           "CONFIG");
  }
  const toml::node* node = root.get(key);
  if (!node) return Status::Ok();
  const toml::array* arr = node->as_array();
  if (!arr || !arr->is_array_of_tables())
    return Status::Error(
        where(source, node->source()) + ": '" + key + "' must be [[" + key + "]] tables", "CONFIG");
  *tables = arr;
  return Status::Ok();
}

}  // namespace keys_detail

std::string format_utc(std::int64_t us) {
  std::int64_t seconds = us / keys_detail::kMicrosPerSecond;
  std::int64_t micros = us % keys_detail::kMicrosPerSecond;
  if (micros < 0) {
    micros += keys_detail::kMicrosPerSecond;
    --seconds;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  int y = 0, m = 0, d = 0;
  keys_detail::civil_from_days(days, y, m, d);
  char buf[48];
  const int h = static_cast<int>(rest / 3600), mi = static_cast<int>(rest / 60 % 60),
            s = static_cast<int>(rest % 60);
  if (micros)
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d, h, mi, s,
                  static_cast<int>(micros));
  else
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, h, mi, s);
  return buf;
}

}  // namespace curvebus
