// A small, strict JSON reader for tests: checks that a string literal or a
// flat object (string, number, true/false/null values) is valid JSON per
// RFC 8259 (valid UTF-8, no raw control characters, paired surrogates, the
// number grammar) and gives back the decoded values, keys in their order.
// Written for the tests that prove log and audit lines cannot be forged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "curvebus/topic.hpp"  // is_valid_utf8

namespace curvebus::test {

struct JsonValue {
  enum Kind { kString, kNumber, kBool, kNull } kind = kNull;
  std::string text;  // decoded string, number as written, "true"/"false"/"null"
};
using JsonObject = std::vector<std::pair<std::string, JsonValue>>;

class JsonReader {
 public:
  explicit JsonReader(std::string_view in) : in_(in) {}

  // The whole input is one JSON string literal; returns its decoded value.
  static std::optional<std::string> string_literal(std::string_view in) {
    if (!is_valid_utf8(in)) return std::nullopt;
    JsonReader r(in);
    std::string out;
    if (!r.read_string(out) || r.pos_ != in.size()) return std::nullopt;
    return out;
  }

  // The whole input is one JSON object whose values are all scalars.
  static std::optional<JsonObject> flat_object(std::string_view in) {
    if (!is_valid_utf8(in)) return std::nullopt;
    JsonReader r(in);
    JsonObject obj;
    r.skip_ws();
    if (!r.eat('{')) return std::nullopt;
    r.skip_ws();
    if (!r.eat('}')) {
      for (;;) {
        r.skip_ws();
        std::string key;
        if (!r.read_string(key)) return std::nullopt;
        r.skip_ws();
        if (!r.eat(':')) return std::nullopt;
        r.skip_ws();
        JsonValue v;
        if (!r.read_scalar(v)) return std::nullopt;
        obj.emplace_back(std::move(key), std::move(v));
        r.skip_ws();
        if (r.eat(',')) continue;
        if (r.eat('}')) break;
        return std::nullopt;
      }
    }
    r.skip_ws();
    if (r.pos_ != in.size()) return std::nullopt;
    return obj;
  }

 private:
  bool eat(char c) {
    if (pos_ < in_.size() && in_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void skip_ws() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool read_hex4(std::uint32_t& v) {
    if (in_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = in_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }
  static void put_utf8(std::uint32_t cp, std::string& out) {
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
  bool read_string(std::string& out) {
    if (!eat('"')) return false;
    while (pos_ < in_.size()) {
      const char c = in_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= in_.size()) return false;
      const char e = in_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          std::uint32_t cp;
          if (!read_hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo;
            if (!eat('\\') || !eat('u') || !read_hex4(lo) || lo < 0xDC00 || lo > 0xDFFF)
              return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;  // unterminated
  }
  bool digits() {
    const std::size_t start = pos_;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }
  bool read_number(std::string& out) {
    const std::size_t start = pos_;
    eat('-');
    if (eat('0')) {
      // no leading zeros
    } else if (pos_ < in_.size() && in_[pos_] >= '1' && in_[pos_] <= '9') {
      digits();
    } else {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (eat('e') || eat('E')) {
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    out.assign(in_.substr(start, pos_ - start));
    return true;
  }
  bool read_word(std::string_view w) {
    if (in_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  bool read_scalar(JsonValue& v) {
    if (pos_ >= in_.size()) return false;
    const char c = in_[pos_];
    if (c == '"') {
      v.kind = JsonValue::kString;
      return read_string(v.text);
    }
    if (c == 't' || c == 'f') {
      v.kind = JsonValue::kBool;
      v.text = c == 't' ? "true" : "false";
      return read_word(v.text);
    }
    if (c == 'n') {
      v.kind = JsonValue::kNull;
      v.text = "null";
      return read_word(v.text);
    }
    v.kind = JsonValue::kNumber;
    return read_number(v.text);
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

// The value of `key` in `obj`, or nullptr.
inline const JsonValue* json_get(const JsonObject& obj, std::string_view key) {
  for (const auto& kv : obj)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

}  // namespace curvebus::test
