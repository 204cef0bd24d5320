#include "stats.hpp"

#include <string>

namespace curvebus::web {

const char* refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kConnectionCap:
      return "connectionCap";
    case Refusal::kAddressCap:
      return "addressCap";
    case Refusal::kOverflow:
      return "overflow";
    case Refusal::kOrigin:
      return "origin";
    case Refusal::kMessageTooBig:
      return "messageTooBig";
    case Refusal::kHandshakeTimeout:
      return "handshakeTimeout";
    case Refusal::kIdleTimeout:
      return "idleTimeout";
    case Refusal::kPath:
      return "path";
    case Refusal::kMethod:
      return "method";
    case Refusal::kBadRequest:
      return "badRequest";
    case Refusal::kBrokerUnreachable:
      return "brokerUnreachable";
    case Refusal::kTls:
      return "tls";
    case Refusal::kCount:
      break;
  }
  return "unknown";
}

std::string stats_json(const Stats& s, const Limits& limits) {
  using std::to_string;
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - s.started)
          .count();
  std::string j = "{\"status\":\"ok\",\"version\":\"" CURVEBUS_VERSION "\",\"uptimeSeconds\":";
  j += to_string(uptime);
  j += ",\"connections\":{\"open\":" + to_string(s.connections_open) +
       ",\"total\":" + to_string(s.connections_total) +
       ",\"relaysOpen\":" + to_string(s.relays_open) +
       ",\"relaysTotal\":" + to_string(s.relays_total) + "}";
  j += ",\"bytes\":{\"toBroker\":" + to_string(s.bytes_to_broker) +
       ",\"toBrowser\":" + to_string(s.bytes_to_browser) +
       ",\"buffered\":" + to_string(s.buffered) +
       ",\"bufferedPeak\":" + to_string(s.buffered_peak) + "}";
  j += ",\"backpressure\":{\"toBroker\":" + to_string(s.paused_to_broker) +
       ",\"toBrowser\":" + to_string(s.paused_to_browser) + "}";
  j += ",\"refusals\":{";
  for (std::size_t i = 0; i < s.refusals.size(); ++i) {
    if (i) j += ",";
    j += "\"" + std::string(refusal_name(static_cast<Refusal>(i))) +
         "\":" + to_string(s.refusals[i]);
  }
  j += "}";
  j += ",\"limits\":{\"maxConnections\":" + to_string(limits.max_connections) +
       ",\"maxPerAddress\":" + to_string(limits.max_per_address) +
       ",\"maxBuffered\":" + to_string(limits.max_buffered) +
       ",\"maxMessage\":" + to_string(limits.max_message) +
       ",\"handshakeTimeoutMs\":" + to_string(limits.handshake_timeout.count()) +
       ",\"idleTimeoutMs\":" + to_string(limits.idle_timeout.count()) + "}}";
  return j;
}

}  // namespace curvebus::web
