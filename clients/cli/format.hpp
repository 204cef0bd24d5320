// Output formats of the `curvebus` tool: one line per message (plain or
// JSON), robot payloads decoded, aligned tables for people.
#pragma once

#include <string>
#include <vector>

#include "curvebus/client.hpp"

namespace curvebus::cli {

// "robot/<id>/<kind>" -> kind ("cmd", "ack", "telemetry", "status"), else "".
std::string robot_kind(const std::string& topic);

// JSON text of a robot payload on a robot topic, or "" when it does not decode.
std::string robot_payload_json(const std::string& topic, const std::string& payload);

// Encodes a JSON line for `topic`: a robot message's binary form on robot
// topics (Command gets id and issued_us filled in when missing), the JSON text
// itself elsewhere (after checking it is JSON).  Error text on failure.
bool encode_json_payload(const std::string& topic, const std::string& json, std::string& out,
                         std::string& error);

std::string json_string(const std::string& s);
// Printable text: non-printable bytes as \xNN, newline as \n.
std::string printable(const std::string& s);
bool is_json_document(const std::string& s);

// One output line for a message.
std::string message_line(const Message& m, bool json);

// A left-aligned text table.
std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

std::string format_time_us(std::int64_t us);
std::string format_duration_ms(std::uint64_t ms);

}  // namespace curvebus::cli
