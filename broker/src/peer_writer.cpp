// RouterWriter (peer_writer.hpp) and the system clock (clock.hpp).
#include "peer_writer.hpp"

#include <cerrno>

#include "clock.hpp"
#include "curvebus/codec.hpp"

namespace curvebus::broker {

PeerWriter::Result RouterWriter::write(const std::string& peer, std::string_view message) {
  const auto index = static_cast<std::size_t>(static_cast<unsigned char>(peer.front()) - '0');
  if (peer.size() < 2 || index >= listeners_.size()) return Result::kGone;
  void* router = listeners_[index].router.handle();
  if (zmq_send(router, peer.data() + 1, peer.size() - 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
    errno_ = zmq_errno();
    if (errno_ == EAGAIN) return Result::kWouldBlock;
    if (errno_ == EHOSTUNREACH) return Result::kGone;
    return Result::kFailed;
  }
  // Once the routing id is accepted, ROUTER takes the body (or drops it when
  // the pipe closed meanwhile, which the next write notices).
  zmq_send(router, message.data(), message.size(), ZMQ_DONTWAIT);
  return Result::kSent;
}

std::string RouterWriter::error() const {
  return zmq_strerror(errno_);
}

namespace {

class SystemClock final : public Clock {
 public:
  std::int64_t steady_ms() override { return curvebus::steady_ms(); }
  std::int64_t wall_us() override { return curvebus::wall_clock_us(); }
};

}  // namespace

Clock& system_clock() {
  static SystemClock clock;
  return clock;
}

}  // namespace curvebus::broker
