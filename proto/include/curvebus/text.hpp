// Safe text from peer-supplied strings, for logs, tables and JSON.
//
// A peer chooses its topic names, command names, error text and, through the
// allow-list, even names that end up in log lines.  Printed raw, such a string
// could end a log line and forge the next one ("x\nsession open name=dev"),
// move the terminal cursor, reorder what a reader sees (bidi overrides), or
// break the JSON of an audit line.  Every string a peer supplies goes through
// printable() (plain logs and tables) or json_string() (structured logs)
// wherever it is printed.
//
// Both functions are pure, allocate only their result and are thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace curvebus {

// Returns `s` as one line of safe, valid UTF-8 text:
//  * printable ASCII (0x20..0x7E) is kept, except '\' -> "\\" and '"' -> "\"";
//  * '\n', '\r', '\t' -> "\n", "\r", "\t" (two characters each);
//  * other C0 controls (0x00..0x1F) and DEL (0x7F) -> "\xNN" (hex, upper case);
//  * well-formed UTF-8 multi-byte characters are kept, except C1 controls
//    (U+0080..U+009F), the line and paragraph separators U+2028/U+2029, the
//    bidirectional controls (U+061C, U+200E, U+200F, U+202A..U+202E,
//    U+2066..U+2069) and U+FEFF, which become "\u{XXXX}";
//  * every byte of ill-formed UTF-8 (a stray continuation byte, an overlong
//    form, a surrogate, a code point past U+10FFFF, a truncated sequence, the
//    bytes 0xC0, 0xC1, 0xF5..0xFF) -> "\xNN".
// At most `max_bytes` bytes of the input are shown: a longer input is cut at a
// character boundary at or before `max_bytes` and "…(+N bytes)" is appended,
// N being the number of input bytes not shown.
// The result never holds a raw control character, a newline, ill-formed UTF-8
// or a '"' that is not preceded by an escaping '\'.
std::string printable(std::string_view s, std::size_t max_bytes = 256);

// Returns a complete JSON string literal, quotes included, whose value is
// printable(s, max_bytes): '"' and '\' are escaped JSON-style (so the "\xNN"
// of printable() reads as the text backslash, 'x', N, N once decoded).  The
// result is valid JSON and valid UTF-8 and holds no raw control character.
std::string json_string(std::string_view s, std::size_t max_bytes = 256);

}  // namespace curvebus
