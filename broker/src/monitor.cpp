// Socket monitor: counts failed handshakes (plaintext peers, bad CURVE
// handshakes, ZAP refusals) and connections, as an audit trail.
#include <cstring>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

void Core::handle_monitor() {
  for (int i = 0; i < 256; ++i) {
    zmq::message_t event;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
    std::string address;
    if (event.more()) {
      zmq::message_t addr;
      if (monitor_.recv(addr)) address.assign(static_cast<const char*>(addr.data()), addr.size());
    }
    if (event.size() < 6) continue;
    std::uint16_t id = 0;
    std::uint32_t value = 0;
    std::memcpy(&id, event.data(), 2);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
    switch (id) {
      case ZMQ_EVENT_ACCEPTED:
        ++connections_;
        spdlog::debug("connection accepted address={}", address);
        break;
      case ZMQ_EVENT_DISCONNECTED:
        if (connections_ > 0) --connections_;
        spdlog::debug("connection closed address={}", address);
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        spdlog::debug("handshake succeeded address={}", address);
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: {
        ++counters_.handshake_failures;
        std::uint64_t suppressed = 0;
        if (log_handshake_.allow(suppressed)) {
          const char* kind = id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH       ? "auth"
                             : id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol"
                                                                         : "no_detail";
          spdlog::warn("handshake failed kind={} code=0x{:x} address={}{}", kind, value, address,
                       suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
        }
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace curvebus::broker
