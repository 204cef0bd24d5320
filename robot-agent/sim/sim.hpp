// The simulated Alex Arduino's firmware, without I/O: bytes from the host go
// in, frames for the host and event lines come out.  alex-sim (main.cpp) puts
// it on a pseudo-terminal; tests can drive it directly.
//
// It answers as the course firmware does (alex-protocol.md §4.3, §5): OK before
// moving, STATUS with the counters for GET_STATS, ERROR BAD_PACKET for a bad
// magic, ERROR BAD_CHECKSUM for a bad checksum, ERROR BAD_COMMAND for an
// unknown command, nothing for non-COMMAND packets.  HELLO is ignored (the
// skeleton's default), answered with OK, or required first (the optional
// waitForHello called from setup(): until a HELLO arrives every other valid
// packet gets ERROR BAD_RESPONSE; the HELLO gets OK; later HELLOs are ignored
// by the main loop).  reboot() models a power cycle (USB unplugged).
//
// Framing: by default the receiver resynchronises on the magic number; with
// `strict` it frames by counting bytes like the course firmware, so one stray
// byte shifts every later window until the host re-aligns it (§4.4).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "alex/packet.hpp"

namespace curvebus::alexsim {

enum class HelloMode { Ignore, Answer, Require };
bool parse_hello_mode(const std::string& s, HelloMode& out);

struct MotionConfig {
  // Defaults: ~3.8 ticks per 10 ms per wheel at 100 % straight, 1.8 turning.
  double ticks_per_cm = 9.4;       // COUNTS_PER_REV 192 / WHEEL_CIRC 20.4 cm
  double cm_per_s_at_full = 40;    // straight-line speed at 100 %
  double ticks_per_deg = 1.0;      // wheel ticks per degree of turn
  double deg_per_s_at_full = 180;  // turn rate at 100 %
};

struct Faults {
  int drop_next = 0;      // replies still to drop
  int corrupt_next = 0;   // replies still to send with a bad checksum
  int drop_every = 0;     // drop every Nth reply (0 = off)
  int corrupt_every = 0;  // corrupt every Nth reply
  int garbage_every = 0;  // random bytes before every Nth reply
};

class Firmware {
 public:
  // `emit` sends bytes to the host; `event` reports one line for the log.
  using Emit = std::function<void(const std::vector<std::uint8_t>&)>;
  using Event = std::function<void(const std::string&)>;

  Firmware(MotionConfig motion, Emit emit, Event event);

  void set_strict(bool on);
  bool strict() const { return strict_; }
  void set_hello(HelloMode m);
  Faults& faults() { return faults_; }

  // Bytes from the host, already through the line (paced by the caller).
  void receive(const std::uint8_t* p, std::size_t n, std::int64_t now_ms);
  // Advances the motion model.
  void tick(std::int64_t now_ms);
  // Random bytes to the host now (line noise, a debug print).
  void send_garbage(int n);
  // Forgets partial frames.
  void reset_receiver();
  // Power cycle: motors off, counters zero, receivers empty, HELLO needed
  // again (require mode).  Faults and modes are kept.
  void reboot();

  bool moving() const { return motion_ != Motion::None; }
  const std::array<std::uint32_t, alex::kParams>& counters() const { return counters_; }

 private:
  enum class Motion { None, Forward, Reverse, Left, Right };
  void on_frame(const std::uint8_t* frame, std::int64_t now_ms);
  void dispatch(const alex::Packet& p, std::int64_t now_ms);
  void reply(const alex::Packet& p);
  void start(Motion m, std::uint32_t amount, std::uint32_t speed, std::int64_t now_ms);
  void stop(const char* why);
  void clear(std::uint32_t which);
  std::uint32_t cm_of(double ticks) const;

  MotionConfig cfg_;
  Emit emit_;
  Event event_;
  bool strict_ = false;
  bool desynced_ = false;  // strict: the last window had no magic
  HelloMode hello_ = HelloMode::Ignore;
  bool greeted_ = false;
  Faults faults_;
  std::uint64_t replies_ = 0;
  std::mt19937 rng_{12345};

  // Receivers.
  std::vector<std::uint8_t> window_;  // strict: the current 140-byte window
  std::vector<std::uint8_t> stream_;  // resync receiver's buffer

  // Motion.
  Motion motion_ = Motion::None;
  std::int64_t last_tick_ms_ = 0;
  double target_ = 0;  // ticks to go (0 = indefinitely)
  double done_ = 0;    // ticks made in this motion
  double rate_ = 0;    // ticks per ms
  double frac_ = 0;    // sub-tick remainder
  std::array<std::uint32_t, alex::kParams> counters_{};
  double fwd_ticks_for_dist_ = 0, rev_ticks_for_dist_ = 0;
};

}  // namespace curvebus::alexsim
