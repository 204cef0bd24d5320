// The broker's side of the audit trail: every security decision goes to the
// AuditLog (its own JSON-lines file, aggregated under flood) and, when
// written in full or as an aggregate, to $SYS/audit/<event> for
// administrators (handle_subscribe.cpp keeps other names out).
#include "protocol.hpp"

namespace curvebus::broker {

namespace {
constexpr std::int64_t kAuditTickMs = 1000;
}  // namespace

void Protocol::audit(std::string_view event, std::string_view who,
                     std::initializer_list<AuditField> fields) {
  std::string line;
  if (audit_.record(now_ms_, event, who, fields, &line))
    publish_sys("$SYS/audit/" + std::string(event), line, false);
}

void Protocol::run_audit(std::int64_t now) {
  if (now >= next_audit_tick_ms_) {
    next_audit_tick_ms_ = now + kAuditTickMs;
    std::vector<std::string> lines;
    audit_.tick(now, &lines);
    for (const auto& line : lines) {
      // The event name is the line's "event" field; aggregates go to the same topic.
      const std::size_t at = line.find("\"event\":\"");
      if (at == std::string::npos) continue;
      const std::size_t start = at + 9;
      const std::size_t end = line.find('"', start);
      if (end == std::string::npos) continue;
      publish_sys("$SYS/audit/" + line.substr(start, end - start), line, false);
    }
  }
  audit_.flush();
}

}  // namespace curvebus::broker
