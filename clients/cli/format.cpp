#include "format.hpp"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>

#include "curvebus/codec.hpp"
#include "curvebus/text.hpp"
#include "curvebus/topic.hpp"
#include "robot.pb.h"

namespace curvebus::cli {

namespace rv1 = ::curvebus::robot::v1;
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

std::string robot_kind(const std::string& topic) {
  auto levels = split_levels(topic);
  if (levels.size() == 4 && levels[0] == "robot" && levels[2] == "cmd" &&
      levels[3] == "clear-estop")
    return "cmd";  // the e-stop clearing topic carries Commands too
  if (levels.size() != 3 || levels[0] != "robot") return "";
  return std::string(levels[2]);
}

namespace {
template <typename M>
std::string to_json(const std::string& payload) {
  M m;
  if (!m.ParseFromString(payload)) return "";
  std::string out;
  JsonPrintOptions o;
  o.add_whitespace = false;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "";
  return out;
}

template <typename M>
bool from_json(const std::string& json, M& m, std::string& error) {
  JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(json, &m, o);
  if (!s.ok()) {
    error = std::string(s.message());
    return false;
  }
  return true;
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "host";
  return buf;
}
}  // namespace

std::string robot_payload_json(const std::string& topic, const std::string& payload) {
  const std::string kind = robot_kind(topic);
  if (kind == "cmd") return to_json<rv1::Command>(payload);
  if (kind == "ack") return to_json<rv1::CommandResult>(payload);
  if (kind == "telemetry") return to_json<rv1::Telemetry>(payload);
  if (kind == "status") return to_json<rv1::RobotStatus>(payload);
  return "";
}

bool encode_json_payload(const std::string& topic, const std::string& json, std::string& out,
                         std::string& error) {
  const std::string kind = robot_kind(topic);
  if (kind == "cmd") {
    rv1::Command c;
    if (!from_json(json, c, error)) return false;
    if (c.id().empty()) {
      static std::atomic<int> n{0};
      c.set_id(host_name() + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    }
    if (c.issued_us() == 0) c.set_issued_us(wall_clock_us());
    out = c.SerializeAsString();
    return true;
  }
  if (kind == "ack") {
    rv1::CommandResult m;
    if (!from_json(json, m, error)) return false;
    out = m.SerializeAsString();
    return true;
  }
  if (kind == "telemetry") {
    rv1::Telemetry m;
    if (!from_json(json, m, error)) return false;
    out = m.SerializeAsString();
    return true;
  }
  if (kind == "status") {
    rv1::RobotStatus m;
    if (!from_json(json, m, error)) return false;
    out = m.SerializeAsString();
    return true;
  }
  if (!is_json_document(json)) {
    error = "not valid JSON";
    return false;
  }
  out = json;
  return true;
}

bool is_json_document(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos || (s[b] != '{' && s[b] != '[')) return false;
  google::protobuf::Value v;
  return google::protobuf::util::JsonStringToMessage(s, &v).ok();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
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
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  // Bytes that are not UTF-8 cannot travel in a JSON string as they are.
  if (!is_valid_utf8(s)) {
    out = "\"";
    for (unsigned char c : s) {
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
        out += static_cast<char>(c);
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      }
    }
  }
  return out + "\"";
}

std::string printable(const std::string& s) {
  std::string out;
  const bool utf8 = is_valid_utf8(s);
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string message_line(const Message& m, bool json) {
  const std::string robot = robot_payload_json(m.topic, m.payload);
  if (!json) return m.topic + " " + (robot.empty() ? printable(m.payload) : robot);
  std::string payload;
  if (!robot.empty()) {
    payload = robot;
  } else if (is_json_document(m.payload)) {
    payload = m.payload;
    payload.erase(std::remove(payload.begin(), payload.end(), '\n'), payload.end());
  } else {
    payload = json_string(m.payload);
  }
  return "{\"topic\":" + json_string(m.topic) + ",\"seq\":" + std::to_string(m.seq) +
         ",\"publisher\":" + json_string(m.publisher) +
         ",\"retained\":" + (m.retained ? "true" : "false") +
         ",\"publishedUs\":" + std::to_string(m.published_us) + ",\"payload\":" + payload + "}";
}

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& raw_rows) {
  // Cells can hold what peers sent (client names, topics): escaped, so a
  // newline or a terminal control sequence cannot forge a row.
  std::vector<std::vector<std::string>> rows;
  rows.reserve(raw_rows.size());
  for (const auto& r : raw_rows) {
    std::vector<std::string> cells;
    for (const auto& c : r) cells.push_back(curvebus::printable(c, 200));
    rows.push_back(std::move(cells));
  }
  std::vector<std::size_t> width(header.size(), 0);
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (std::size_t i = 0; i < header.size(); ++i) {
      const std::string cell = i < r.size() ? r[i] : "";
      s += cell;
      if (i + 1 < header.size()) s += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string format_time_us(std::int64_t us) {
  if (us <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string format_duration_ms(std::uint64_t ms) {
  const std::uint64_t s = ms / 1000;
  char buf[48];
  if (s >= 86400)
    std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s % 86400 / 3600));
  else if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  return buf;
}

}  // namespace curvebus::cli
