// libFuzzer harness: the broker's dispatch on arbitrary bytes, through the
// in-process seam (broker/src/testing/harness.hpp): a real core with the
// harness's clock and recording writer, no socket.  Each input is the body of
// one incoming message, from one of three peers: a session of "dev" (admin,
// every topic), a session of "alex" (a robot agent with a narrow ACL), or a
// connection with alex's key that never registered.  The first input byte
// picks which.  Sessions an input ended (BYE, kick, revoke) are opened again
// before the next input; when that is refused (a revocation, a key change)
// or the topics fill up, the next input gets a fresh harness.  What the
// broker wrote is read and dropped, so every reply is decoded (the harness
// throws, which libFuzzer reports, if the broker ever writes a non-Frame).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "testing/harness.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::broker::testing;

constexpr std::uint32_t kMaxTopics = 2000;
constexpr std::uint32_t kFreshAt = 1500;  // topics held before starting over

struct State {
  std::unique_ptr<Harness> h;
  Peer dev, alex, stranger;

  void fresh() {
    Harness::Options o;
    o.config.max_topics = kMaxTopics;
    o.config.stats_interval_s = 0;  // no $SYS/broker/stats between inputs
    o.keep_revocations = false;     // no file (and no fsync) per revocation
    o.keep_audit = false;
    h = std::make_unique<Harness>(std::move(o));
    dev = h->open("dev");
    alex = h->open("alex");
    stranger = h->connect("alex");
  }

  // Opens again the sessions the last input ended; false when refused.
  bool restore() {
    try {
      if (!h->registered(dev)) dev = h->open("dev");
      if (!h->registered(alex)) alex = h->open("alex");
    } catch (const std::exception&) {
      return false;
    }
    return h->status().topics() < kFreshAt;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State s;
  if (!s.h || !s.restore()) s.fresh();
  if (size == 0) return 0;
  const std::uint8_t who = data[0] % 3;
  const Peer& peer = who == 0 ? s.dev : who == 1 ? s.alex : s.stranger;
  s.h->send_bytes(peer, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  s.h->take_all();
  return 0;
}
