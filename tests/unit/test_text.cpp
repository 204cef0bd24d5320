// printable() and json_string(): peer-supplied text made safe for logs,
// tables and JSON audit lines.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "curvebus/text.hpp"
#include "curvebus/topic.hpp"
#include "json_check.hpp"

using curvebus::json_string;
using curvebus::printable;

namespace {

// Code points of a valid UTF-8 string.
std::vector<std::uint32_t> code_points(const std::string& s) {
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (std::size_t k = 1; k < len; ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
    out.push_back(cp);
    i += len;
  }
  return out;
}

bool is_layout_control(std::uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0x061C ||
         cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

// Why `out` (a printable() result) breaks its contract, or "" when it keeps it.
std::string contract_broken(const std::string& out) {
  if (!curvebus::is_valid_utf8(out)) return "invalid UTF-8";
  for (std::uint32_t cp : code_points(out))
    if (is_layout_control(cp)) return "raw control U+" + std::to_string(cp);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\\') {
      if (i + 1 == out.size()) return "dangling backslash";
      ++i;  // the escaped character
    } else if (out[i] == '"') {
      return "unescaped quote at " + std::to_string(i);
    }
  }
  return "";
}

std::string hex2(unsigned v) {
  static const char* digits = "0123456789ABCDEF";
  return {digits[(v >> 4) & 0xF], digits[v & 0xF]};
}

}  // namespace

TEST_CASE("printable leaves ordinary text unchanged", "[text]") {
  for (const char* s :
       {"", "robot/alex/telemetry", "session open name=dev fp=3f2a", "caf\xc3\xa9 \xe2\x82\xac 5",
        "\xf0\x9f\xa4\x96 robot", "\xe6\x9c\xba\xe5\x99\xa8\xe4\xba\xba", "a'b`c{d}e~ |$%&"}) {
    CAPTURE(s);
    CHECK(printable(s) == s);
  }
  std::string ascii;
  for (char c = 0x20; c < 0x7F; ++c)
    if (c != '\\' && c != '"') ascii.push_back(c);
  CHECK(printable(ascii) == ascii);
}

TEST_CASE("printable: a newline in a peer string cannot start a forged log line", "[text]") {
  const std::string evil = "x\nsession open name=dev fp=00ff role=admin\r\n";
  const std::string out = printable(evil);
  CHECK(out == "x\\nsession open name=dev fp=00ff role=admin\\r\\n");
  CHECK(out.find('\n') == std::string::npos);
  CHECK(out.find('\r') == std::string::npos);
  CHECK(printable("a\tb") == "a\\tb");
}

TEST_CASE("printable escapes backslash and double quote", "[text]") {
  CHECK(printable("a\"b\\c") == "a\\\"b\\\\c");
  CHECK(printable("name=\"dev\" ok") == "name=\\\"dev\\\" ok");
  // A trailing backslash cannot swallow the quote a log format puts after it.
  CHECK(printable("x\\") == "x\\\\");
  CHECK(contract_broken(printable("\\\"\\\\\"")).empty());
}

TEST_CASE(
    "printable escapes every other C0 control and DEL as a two-digit hex escape (backslash x NN)",
    "[text]") {
  for (unsigned c = 0; c < 0x20; ++c) {
    if (c == '\n' || c == '\r' || c == '\t') continue;
    CAPTURE(c);
    CHECK(printable(std::string(1, static_cast<char>(c))) == "\\x" + hex2(c));
  }
  CHECK(printable("\x7f") == "\\x7F");
  CHECK(printable(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(printable("\x1b[2J\x1b[31mred") == "\\x1B[2J\\x1B[31mred");  // terminal escapes
}

TEST_CASE("printable escapes C1 controls as a code point escape (backslash u{XXXX})", "[text]") {
  for (unsigned cp = 0x80; cp <= 0x9F; ++cp) {
    const std::string utf8{static_cast<char>(0xC0 | (cp >> 6)),
                           static_cast<char>(0x80 | (cp & 0x3F))};
    CAPTURE(cp);
    CHECK(printable(utf8) == "\\u{00" + hex2(cp) + "}");
  }
  CHECK(printable("\xc2\xa0") == "\xc2\xa0");  // U+00A0, first character past C1, kept
  CHECK(printable("\x85") == "\\x85");         // a raw byte 0x85 is not UTF-8
}

TEST_CASE("printable escapes line separators, bidi controls and the BOM", "[text]") {
  CHECK(printable("a\xe2\x80\xa8z") == "a\\u{2028}z");
  CHECK(printable("a\xe2\x80\xa9z") == "a\\u{2029}z");
  CHECK(printable("\xe2\x80\x8e") == "\\u{200E}");
  CHECK(printable("\xe2\x80\x8f") == "\\u{200F}");
  CHECK(printable("\xe2\x80\xaa") == "\\u{202A}");
  CHECK(printable("\xe2\x80\xab") == "\\u{202B}");
  CHECK(printable("\xe2\x80\xac") == "\\u{202C}");
  CHECK(printable("\xe2\x80\xad") == "\\u{202D}");
  // Right-to-left override: "txt.exe" would read as "exe.txt" on a terminal.
  CHECK(printable("fp=\xe2\x80\xaetxt.exe") == "fp=\\u{202E}txt.exe");
  CHECK(printable("\xe2\x81\xa6") == "\\u{2066}");
  CHECK(printable("\xe2\x81\xa7") == "\\u{2067}");
  CHECK(printable("\xe2\x81\xa8") == "\\u{2068}");
  CHECK(printable("\xe2\x81\xa9") == "\\u{2069}");
  CHECK(printable("\xd8\x9c") == "\\u{061C}");  // arabic letter mark, also a bidi control
  CHECK(printable("\xef\xbb\xbf"
                  "dev") == "\\u{FEFF}dev");
  // Neighbours are ordinary characters and stay.
  for (const char* kept : {"\xe2\x80\xa7", "\xe2\x80\xaf", "\xe2\x80\x8d", "\xe2\x81\xaa",
                           "\xef\xbb\xbe", "\xd8\x9b"}) {
    CAPTURE(kept);
    CHECK(printable(kept) == kept);
  }
}

TEST_CASE("printable escapes every byte of ill-formed UTF-8 as a two-digit hex escape", "[text]") {
  CHECK(printable("\x80") == "\\x80");  // stray continuation byte
  CHECK(printable("a\xbf"
                  "b") == "a\\xBFb");
  CHECK(printable("\xc0\xaf") == "\\xC0\\xAF");                    // overlong '/'
  CHECK(printable("\xc1\xbf") == "\\xC1\\xBF");                    // overlong
  CHECK(printable("\xe0\x80\xaf") == "\\xE0\\x80\\xAF");           // overlong, 3 bytes
  CHECK(printable("\xf0\x80\x80\xaf") == "\\xF0\\x80\\x80\\xAF");  // overlong, 4 bytes
  CHECK(printable("\xed\xa0\x80") == "\\xED\\xA0\\x80");           // surrogate U+D800
  CHECK(printable("\xed\xbf\xbf") == "\\xED\\xBF\\xBF");           // surrogate U+DFFF
  CHECK(printable("\xf4\x90\x80\x80") == "\\xF4\\x90\\x80\\x80");  // U+110000
  CHECK(printable("\xf5\x80\x80\x80") == "\\xF5\\x80\\x80\\x80");
  CHECK(printable("\xff\xfe") == "\\xFF\\xFE");
  CHECK(printable("ok\xe2\x82") == "ok\\xE2\\x82");  // truncated at the end
  CHECK(printable("\xe2\x82"
                  "A") ==
        "\\xE2\\x82"
        "A");                                                  // truncated before ASCII
  CHECK(printable("\xf0\x9f\xa4\n") == "\\xF0\\x9F\\xA4\\n");  // truncated before a newline
  // The well-formed characters right at the limits are kept.
  CHECK(printable("\xed\x9f\xbf") == "\xed\x9f\xbf");          // U+D7FF
  CHECK(printable("\xee\x80\x80") == "\xee\x80\x80");          // U+E000
  CHECK(printable("\xf4\x8f\xbf\xbf") == "\xf4\x8f\xbf\xbf");  // U+10FFFF
  CHECK(printable("\xdf\xbf") == "\xdf\xbf");                  // U+07FF
}

TEST_CASE("printable cuts long input at a character boundary and says how much is left out",
          "[text]") {
  CHECK(printable("abc", 3) == "abc");
  CHECK(printable("abcd", 3) == "abc\xe2\x80\xa6(+1 bytes)");
  // "ab€": the euro sign (3 bytes) would cross the limit, so it is left out whole.
  CHECK(printable("ab\xe2\x82\xac", 3) == "ab\xe2\x80\xa6(+3 bytes)");
  CHECK(printable("ab\xe2\x82\xac", 4) == "ab\xe2\x80\xa6(+3 bytes)");
  CHECK(printable("ab\xe2\x82\xac", 5) == "ab\xe2\x82\xac");
  CHECK(printable("xyz", 0) == "\xe2\x80\xa6(+3 bytes)");
  // The limit counts input bytes, not the (longer) escaped output.
  CHECK(printable("\n\n\n\n", 2) == "\\n\\n\xe2\x80\xa6(+2 bytes)");
  // Ill-formed bytes are one-byte units and may be cut between.
  CHECK(printable("a\xff\xff", 2) == "a\\xFF\xe2\x80\xa6(+1 bytes)");
  const std::string big(1000, 'x');
  CHECK(printable(big) == std::string(256, 'x') + "\xe2\x80\xa6(+744 bytes)");
}

TEST_CASE("printable output keeps its contract for every 1- and 2-byte input and random input",
          "[text]") {
  for (unsigned a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    const std::string r1 = contract_broken(printable(one));
    if (!r1.empty()) FAIL("byte " << a << ": " << r1);
    for (unsigned b = 0; b < 256; ++b) {
      const std::string two{static_cast<char>(a), static_cast<char>(b)};
      const std::string r2 = contract_broken(printable(two));
      if (!r2.empty()) FAIL("bytes " << a << "," << b << ": " << r2);
    }
  }
  std::mt19937 rng(20261201);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 40), pick(0, 3);
  // Bias towards bytes that start or continue multi-byte sequences.
  const unsigned char interesting[] = {0x80, 0x9F, 0xBF, 0xC2, 0xE2, 0xED, 0xEF, 0xF0, 0xF4};
  for (int n = 0; n < 20000; ++n) {
    std::string s;
    for (int i = len(rng); i > 0; --i)
      s.push_back(static_cast<char>(
          pick(rng) == 0 ? interesting[static_cast<std::size_t>(byte(rng)) % 9] : byte(rng)));
    const std::size_t max = static_cast<std::size_t>(len(rng));
    const std::string why = contract_broken(printable(s, max));
    if (!why.empty()) FAIL("random input #" << n << ": " << why);
    const auto lit = curvebus::test::JsonReader::string_literal(json_string(s, max));
    if (!lit || *lit != printable(s, max)) FAIL("json_string of random input #" << n);
  }
}

TEST_CASE("json_string is a valid JSON literal whose value is printable(s), for all 256 bytes",
          "[text]") {
  for (unsigned c = 0; c < 256; ++c) {
    const std::string s(1, static_cast<char>(c));
    const std::string lit = json_string(s);
    CAPTURE(c, lit);
    REQUIRE(curvebus::is_valid_utf8(lit));
    for (char ch : lit) CHECK(static_cast<unsigned char>(ch) >= 0x20);
    const auto value = curvebus::test::JsonReader::string_literal(lit);
    REQUIRE(value);
    CHECK(*value == printable(s));
  }
}

TEST_CASE("json_string escapes quotes, backslashes and the hex escapes of printable JSON-style",
          "[text]") {
  CHECK(json_string("alex") == "\"alex\"");
  CHECK(json_string("") == "\"\"");
  CHECK(json_string("a\"b") == R"("a\\\"b")");
  CHECK(json_string("a\\b") == R"("a\\\\b")");
  CHECK(json_string("\x01") == R"("\\x01")");
  CHECK(json_string("x\ny") == R"("x\\ny")");
  CHECK(json_string("\xe2\x80\xa8") == R"("\\u{2028}")");
  CHECK(json_string("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  // A peer string built to close the JSON string and add a field stays one value.
  const std::string evil = "dev\",\"role\":\"admin";
  const auto obj = curvebus::test::JsonReader::flat_object("{\"who\":" + json_string(evil) + "}");
  REQUIRE(obj);
  REQUIRE(obj->size() == 1);
  CHECK(obj->front().second.text == printable(evil));
  CHECK(json_string("abcd", 2) == "\"ab\xe2\x80\xa6(+2 bytes)\"");
}

TEST_CASE("the test's own JSON reader rejects what is not JSON", "[text]") {
  using curvebus::test::JsonReader;
  CHECK_FALSE(JsonReader::string_literal("\"a\nb\""));   // raw control character
  CHECK_FALSE(JsonReader::string_literal("\"a\\xb\""));  // not a JSON escape
  CHECK_FALSE(JsonReader::string_literal("\"abc"));
  CHECK_FALSE(JsonReader::string_literal("\"\xff\""));
  CHECK_FALSE(JsonReader::string_literal("\"\\ud800\""));
  CHECK_FALSE(JsonReader::string_literal("\"a\"b\""));
  CHECK(JsonReader::string_literal("\"\\ud83e\\udd16\"") == std::string("\xf0\x9f\xa4\x96"));
  CHECK_FALSE(JsonReader::flat_object("{\"a\":1}\n{\"b\":2}"));
  CHECK_FALSE(JsonReader::flat_object("{\"a\":01}"));
  CHECK_FALSE(JsonReader::flat_object("{\"a\":1,}"));
  CHECK(JsonReader::flat_object("{\"a\":-1.5e3,\"b\":true,\"c\":null,\"d\":\"x\"}"));
}
