// Socket monitor: counts connections and failed handshakes (plaintext peers,
// bad CURVE handshakes, ZAP refusals) and audits each failure with the
// peer's address and port.
//
// libzmq's monitor names the broker's own endpoint in every event, not the
// peer.  ACCEPTED and DISCONNECTED carry the connection's descriptor, so the
// broker asks the kernel for the peer's address when the connection is
// accepted (getpeername), and a handshake failure — which carries no
// descriptor — is attributed to the DISCONNECTED that libzmq emits right after
// it for the same connection (one I/O thread emits both, in that order).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "accept_registry.hpp"
#include "core.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxTrackedConnections = 200000;

std::string peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "";
}

const char* failure_kind(std::uint16_t id) {
  switch (id) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return "auth";
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      return "protocol";
    default:
      return "no_detail";
  }
}

// What a ZMTP protocol error code means, for the audit line.
const char* protocol_error_name(std::uint32_t code) {
  switch (code) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
      return "mechanism mismatch (not CURVE)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
      return "cryptographic error (wrong server key?)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
      return "unexpected command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_HELLO:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_INITIATE:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_MESSAGE:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED:
      return "malformed command";
    case ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED:
    case ZMQ_PROTOCOL_ERROR_ZAP_BAD_REQUEST_ID:
    case ZMQ_PROTOCOL_ERROR_ZAP_BAD_VERSION:
    case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_STATUS_CODE:
    case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA:
      return "authentication handler error";
    default:
      return "protocol error";
  }
}

}  // namespace

void Core::handle_monitor(std::size_t listener) {
  zmq::socket_t& monitor = listeners_[listener].monitor;
  for (int i = 0; i < 256; ++i) {
    zmq::message_t event;
    if (!monitor.recv(event, zmq::recv_flags::dontwait)) return;
    if (event.more()) {
      zmq::message_t endpoint;  // the broker's own endpoint: not useful
      (void)monitor.recv(endpoint);
    }
    if (event.size() < 6) continue;
    std::uint16_t id = 0;
    std::uint32_t value = 0;
    std::memcpy(&id, event.data(), 2);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
    switch (id) {
      case ZMQ_EVENT_ACCEPTED: {
        ++connections_;
        const int fd = static_cast<int>(value);
        const std::uint64_t key = (static_cast<std::uint64_t>(listener) << 32) | value;
        // Recorded at accept(); getpeername only if the recording is not in
        // effect (it may name a later connection on a reused descriptor).
        std::string address = take_accepted_address(listeners_[listener].listen_fd, fd);
        if (address.empty() && !accept_registry_active()) address = peer_address(fd);
        if (connections_by_fd_.size() < kMaxTrackedConnections)
          connections_by_fd_[key] = std::move(address);
        spdlog::debug("connection accepted address={}", connections_by_fd_[key]);
        break;
      }
      case ZMQ_EVENT_DISCONNECTED: {
        if (connections_ > 0) --connections_;
        const std::uint64_t key = (static_cast<std::uint64_t>(listener) << 32) | value;
        std::string address;
        if (auto it = connections_by_fd_.find(key); it != connections_by_fd_.end()) {
          address = std::move(it->second);
          connections_by_fd_.erase(it);
        }
        if (address.empty()) address = "unknown";
        // A handshake failure of this listener waits for its DISCONNECTED.
        for (auto it = pending_handshake_failures_.begin(); it != pending_handshake_failures_.end();
             ++it) {
          if (it->first != listener) continue;
          const std::string detail = std::move(it->second);
          pending_handshake_failures_.erase(it);
          std::uint64_t suppressed = 0;
          if (log_handshake_.allow(suppressed))
            spdlog::warn("handshake failed address={} {}{}", address, detail,
                         suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
          protocol_.audit("handshake_failed", address,
                          {{"address", address},
                           {"detail", detail},
                           {"endpoint", listeners_[listener].endpoint}});
          break;
        }
        spdlog::debug("connection closed address={}", address);
        break;
      }
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        spdlog::debug("handshake succeeded");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: {
        ++counters_.handshake_failures;
        std::string detail = std::string("kind=") + failure_kind(id);
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
          detail += fmt::format(" code=0x{:x} ({})", value, protocol_error_name(value));
        else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
          detail += fmt::format(" zap_status={}", value);
        else
          detail += fmt::format(" errno={}", value);
        if (pending_handshake_failures_.size() < 10000)
          pending_handshake_failures_.emplace_back(listener, std::move(detail));
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace curvebus::broker
