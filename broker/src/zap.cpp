// ZAP handler (RFC 27): admits only CURVE keys on the live allow-list, inside
// their validity, not revoked, and not reconnecting faster than
// handshake_rate.  The User-Id it returns is the key itself (Z85): the ROUTER
// attaches it to every message of the connection, and the broker checks it
// against the session on every message (input.cpp) — the name is looked up
// from the key, never the other way round.
#include <spdlog/spdlog.h>

#include "core.hpp"
#include "curvebus/certificate.hpp"
#include "curvebus/text.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxHandshakeBuckets = 100000;

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
    const std::string address = parts.size() > 3 ? str(parts[3]) : "";
    const std::string mechanism = parts.size() > 5 ? str(parts[5]) : "";
    if (parts.size() >= 7 && str(parts[0]) == "1.0" && str(parts[2]) == "curvebus" &&
        mechanism == "CURVE" && parts[6].size() == 32) {
      char z85[41] = {};
      zmq_z85_encode(z85, static_cast<const std::uint8_t*>(parts[6].data()), 32);
      const std::string key = z85;
      const std::string fp = key_fingerprint(key);
      const auto match = admission_.acl().by_key(key);
      const std::string why = admission_.refusal(key, "", protocol_.now_us(), nullptr);
      if (why.empty()) {
        // Reconnecting without pause is how a key would pile up connections.
        if (handshake_limit_.size() > kMaxHandshakeBuckets) handshake_limit_.clear();
        auto it = handshake_limit_.find(key);
        if (it == handshake_limit_.end())
          it = handshake_limit_
                   .emplace(key, TokenBucket(config_.handshake_rate, 5.0 * config_.handshake_rate))
                   .first;
        if (it->second.take(protocol_.now_ms())) {
          status = "200";
          text = "OK";
          user = key;
          spdlog::debug("zap allow name={} fp={} address={}", match.entry->name, fp, address);
        } else {
          text = "too many connections";
          ++counters_.auth_denied;
          protocol_.audit("handshake_rate", match.entry->name,
                          {{"name", match.entry->name}, {"fp", fp}, {"address", address}});
        }
      } else {
        ++counters_.auth_denied;
        std::uint64_t suppressed = 0;
        if (log_auth_.allow(suppressed))
          spdlog::warn("auth denied fp={} address={} reason={}{}", fp, address, why,
                       suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
        const std::string name = match.entry ? match.entry->name : "";
        protocol_.audit(match.entry ? "key_refused" : "unknown_key", match.entry ? name : fp,
                        {{"fp", fp}, {"name", name}, {"address", address}, {"reason", why}});
      }
    } else {
      ++counters_.auth_denied;
      std::uint64_t suppressed = 0;
      if (log_auth_.allow(suppressed))
        spdlog::warn("auth denied address={} mechanism={} reason=not CURVE{}", address,
                     printable(mechanism, 32),
                     suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
      protocol_.audit("auth_mechanism", address, {{"address", address}, {"mechanism", mechanism}});
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
