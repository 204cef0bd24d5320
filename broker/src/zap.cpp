// ZAP handler (RFC 27): admits only CURVE keys on the live allow-list and
// binds each to its name (the User-Id the ROUTER attaches to every message).
#include <spdlog/spdlog.h>

#include "core.hpp"
#include "curvebus/certificate.hpp"

namespace curvebus::broker {

namespace {

std::string str(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

}  // namespace

void Core::handle_zap() {
  for (int i = 0; i < 64; ++i) {
    std::vector<zmq::message_t> parts;
    zmq::message_t part;
    if (!zap_.recv(part, zmq::recv_flags::dontwait)) return;
    parts.push_back(std::move(part));
    while (parts.back().more()) {
      zmq::message_t next;
      if (!zap_.recv(next)) break;
      parts.push_back(std::move(next));
    }
    // version, request id, domain, address, identity, mechanism, credentials...
    std::string status = "400", text = "not allowed", user;
    std::string address = parts.size() > 3 ? str(parts[3]) : "";
    std::string mechanism = parts.size() > 5 ? str(parts[5]) : "";
    if (parts.size() >= 7 && str(parts[0]) == "1.0" && str(parts[2]) == "curvebus" &&
        mechanism == "CURVE" && parts[6].size() == 32) {
      char z85[41] = {};
      zmq_z85_encode(z85, static_cast<const std::uint8_t*>(parts[6].data()), 32);
      const AclEntry* entry = acl_.by_key(z85);
      if (entry && !revoked_names_.count(entry->name)) {
        status = "200";
        text = "OK";
        user = entry->name;
        spdlog::debug("zap allow name={} fp={} address={}", entry->name, key_fingerprint(z85),
                      address);
      } else {
        ++counters_.auth_denied;
        std::uint64_t suppressed = 0;
        if (log_auth_.allow(suppressed))
          spdlog::warn("auth denied fp={} address={} reason={}{}", key_fingerprint(z85), address,
                       entry ? "revoked" : "unknown key",
                       suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
      }
    } else {
      ++counters_.auth_denied;
      std::uint64_t suppressed = 0;
      if (log_auth_.allow(suppressed))
        spdlog::warn("auth denied address={} mechanism={} reason=not CURVE{}", address, mechanism,
                     suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    }
    const std::string version = "1.0";
    const std::string request_id = parts.size() > 1 ? str(parts[1]) : "";
    zap_.send(zmq::buffer(version), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(status), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(text), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(user), zmq::send_flags::sndmore);
    zap_.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::none);
  }
}

}  // namespace curvebus::broker
