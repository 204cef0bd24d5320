#include "curvebus/text.hpp"

#include <cstdint>

namespace curvebus {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

// Length of the well-formed UTF-8 multi-byte sequence starting at p[0]
// (which is >= 0x80), with its code point in *cp; 0 when ill-formed.
std::size_t decode_multibyte(const unsigned char* p, const unsigned char* end, std::uint32_t* cp) {
  const unsigned char c = p[0];
  std::size_t len;
  std::uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1Fu;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    v = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07u;
  } else {
    return 0;  // continuation byte, 0xC0/0xC1 (always overlong), 0xF5..0xFF
  }
  if (static_cast<std::size_t>(end - p) < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3Fu);
  }
  if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000)) return 0;  // overlong
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

// Code points kept out of logs although well-formed: they act on how the text
// around them is laid out rather than showing as a character.
bool is_hidden_control(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) ||      // C1 controls
         cp == 0x2028 || cp == 0x2029 ||    // line / paragraph separator
         cp == 0x061C ||                    // arabic letter mark (bidi)
         cp == 0x200E || cp == 0x200F ||    // LRM, RLM
         (cp >= 0x202A && cp <= 0x202E) ||  // embeddings and overrides
         (cp >= 0x2066 && cp <= 0x2069) ||  // isolates
         cp == 0xFEFF;                      // byte order mark / ZWNBSP
}

void append_byte_escape(unsigned char c, std::string& out) {
  out += "\\x";
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0x0F]);
}

void append_codepoint_escape(std::uint32_t cp, std::string& out) {
  out += "\\u{";
  int digits = 4;
  while (digits < 6 && (cp >> (4 * digits)) != 0) ++digits;
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(cp >> (4 * i)) & 0x0F]);
  out.push_back('}');
}

}  // namespace

std::string printable(std::string_view s, std::size_t max_bytes) {
  const auto* begin = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = begin + s.size();
  const bool cut = s.size() > max_bytes;
  std::string out;
  out.reserve(s.size() < max_bytes ? s.size() : max_bytes);
  const unsigned char* p = begin;
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      if (cut && static_cast<std::size_t>(p - begin) + 1 > max_bytes) break;
      ++p;
      switch (c) {
        case '\\':
          out += "\\\\";
          break;
        case '"':
          out += "\\\"";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            append_byte_escape(c, out);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      continue;
    }
    std::uint32_t cp = 0;
    std::size_t len = decode_multibyte(p, end, &cp);
    const std::size_t unit = len == 0 ? 1 : len;
    if (cut && static_cast<std::size_t>(p - begin) + unit > max_bytes) break;
    if (len == 0) {
      append_byte_escape(c, out);
    } else if (is_hidden_control(cp)) {
      append_codepoint_escape(cp, out);
    } else {
      out.append(reinterpret_cast<const char*>(p), len);
    }
    p += unit;
  }
  if (p < end) {
    out += "\xE2\x80\xA6(+";  // U+2026 HORIZONTAL ELLIPSIS
    out += std::to_string(end - p);
    out += " bytes)";
  }
  return out;
}

std::string json_string(std::string_view s, std::size_t max_bytes) {
  const std::string text = printable(s, max_bytes);
  std::string out;
  out.reserve(text.size() + text.size() / 4 + 2);
  out.push_back('"');
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7F) {
      // printable() leaves none; kept so this function stands on its own.
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace curvebus
