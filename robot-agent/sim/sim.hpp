// The simulated Alex Arduino (an Uno running the course firmware), without
// I/O: a discrete-event model on a clock in microseconds.  The host's bytes go
// in with the time they were written; the bytes that reach the host and the
// event lines come out through callbacks, each at its model time.  alex-sim
// (main.cpp) puts it on a pseudo-terminal; tests drive it on a simulated clock.
//
// Faithful model (the default), alex-protocol.md §4.3 and §10:
//  * The line.  Both directions run at the rate the Arduino AVR core really
//    sets (byte_time_us(): 1040 µs per 10-bit byte at "9600", i.e. 9615 baud;
//    170 µs at 57600; 85 µs at 115200).  The host's writes queue behind each
//    other on the line as in a UART's transmit FIFO; byte k of a write started
//    at t arrives at t + k·byte time.
//  * Receive.  Each arriving byte goes into a receive ring of `rx_ring` slots
//    holding rx_ring − 1 bytes (64 and 63 on a 328P).  A byte arriving while
//    the ring is full is DROPPED: counted in stats() and reported as one event
//    line per burst ("rx dropped N bytes (receive ring full)").  The interrupt
//    keeps running while the loop is blocked.
//  * The loop.  One turn costs `loop_us` unless it writes; a turn reads every
//    byte the ring holds (readSerial), and when it read at least one byte
//    hands them to the course's counting deserializer (CourseReceiver below:
//    140-byte window by counting, leftover buffer, at most one frame per
//    call), then acts on the result: PACKET_OK is dispatched, a bad magic gets
//    ERROR/BAD_PACKET, a bad checksum ERROR/BAD_CHECKSUM, incomplete nothing.
//    So at most one packet is dispatched per turn, and a frame left in the
//    leftover buffer waits until more bytes arrive.
//  * Transmit.  Serial.write puts a byte straight into the transmitter when it
//    is idle and the ring is empty, otherwise into a transmit ring of
//    `tx_ring` slots (tx_ring − 1 bytes); the transmitter takes the next byte
//    when the previous one has left (the §10 measurements: no second buffer
//    stage).  When the ring is full, write BLOCKS the loop until the last byte
//    fits: a 140-byte reply stalls the loop for (140 − 64) byte times = 79.04 ms
//    at 9600, during which ≥ 64 arriving bytes overflow the receive ring.
//    Whatever the firmware does after a write (start the motors after OK,
//    stop them after STOP's OK, send a MESSAGE) happens when that write
//    returns.
//  * Replies as the course firmware (§5): OK before moving, STATUS with the
//    counters for GET_STATS, OK then motors off for STOP (plus a MESSAGE
//    "STOPPED" right after the OK with message_after_stop), OK for
//    CLEAR_STATS, ERROR/BAD_COMMAND for an unknown command, nothing for
//    non-COMMAND packets.  HELLO is ignored (the skeleton's default),
//    answered with OK, or required first (waitForHello from setup(): until a
//    HELLO arrives every other valid packet gets ERROR/BAD_RESPONSE, the
//    HELLO gets OK, later HELLOs are ignored).
//  * Motion is continuous (MotionConfig), stopping by itself at the target
//    distance or angle; counters as in the STATUS telemetry (§5.3).
//
// Lenient model (set_lenient, alex-sim --lenient; only for old tests that need
// it): no receive limit, writes never block, every frame is handled the moment
// its last byte arrives, and the receiver resynchronises on the magic number
// unless set_strict(true).  The line is paced as above (or instantaneous with
// baud 0, allowed only here).
//
// Framing (both models): set_strict(true) frames by counting like the course
// (one stray byte shifts every later window until the host re-aligns it,
// §4.4); set_strict(false) uses a receiver that resynchronises on the magic.
// Faithful starts strict, lenient starts resynchronising.
//
// Faults (faults()): drop, corrupt or precede with garbage the next N or every
// Nth reply; send_garbage() is a debug print the loop writes (and blocks on)
// at its next turn.
//
// Threading: none; one thread drives an instance.  Callbacks run inside
// host_write()/run_until() (and reboot()) with now_us() at the moment they
// describe, in time order; they must not call back into the model.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "alex/packet.hpp"

namespace curvebus::alexsim {

enum class HelloMode { Ignore, Answer, Require };
bool parse_hello_mode(const std::string& s, HelloMode& out);

// Time one 8N1 byte (10 bits) takes on a 16 MHz Uno at the nominal `baud`, as
// the Arduino AVR core sets the UART: double speed with UBRR =
// (F_CPU/4/baud − 1)/2, except at 57600 (and where that UBRR would not fit)
// normal speed with UBRR = (F_CPU/8/baud − 1)/2.  9600 → 1040, 57600 → 170,
// 115200 → 85.  0 for baud ≤ 0 (an instantaneous line, lenient only).
std::int64_t byte_time_us(int baud);

struct MotionConfig {
  // Defaults: ~3.8 ticks per 10 ms per wheel at 100 % straight, 1.8 turning.
  double ticks_per_cm = 9.4;       // COUNTS_PER_REV 192 / WHEEL_CIRC 20.4 cm
  double cm_per_s_at_full = 40;    // straight-line speed at 100 %
  double ticks_per_deg = 1.0;      // wheel ticks per degree of turn
  double deg_per_s_at_full = 180;  // turn rate at 100 %
};

struct UartConfig {
  int baud = 9600;            // nominal rate; the real one is byte_time_us(baud)
  std::size_t rx_ring = 64;   // HardwareSerial ring slots (holds rx_ring - 1), >= 2
  std::size_t tx_ring = 64;   // likewise for transmit, >= 2
  std::int64_t loop_us = 50;  // one loop() turn that writes nothing, >= 1
};

struct Faults {
  int drop_next = 0;      // replies still to drop
  int corrupt_next = 0;   // replies still to send with a bad checksum
  int drop_every = 0;     // drop every Nth reply (0 = off)
  int corrupt_every = 0;  // corrupt every Nth reply
  int garbage_every = 0;  // random bytes before every Nth reply
};

struct FirmwareStats {
  std::uint64_t rx_bytes = 0;    // bytes that arrived at the UART
  std::uint64_t rx_dropped = 0;  // of those, lost because the receive ring was full
  std::size_t rx_ring_peak = 0;  // most bytes the receive ring ever held
  std::uint64_t tx_bytes = 0;    // bytes that reached the host
  std::uint64_t loop_turns = 0;  // turns that found work (idle turns are not counted)
  std::uint64_t frames_ok = 0;   // frames the deserializer accepted
  std::uint64_t bad_magic = 0;
  std::uint64_t bad_checksum = 0;  // includes a dataSize the course code would overrun on
  std::uint64_t dispatched = 0;    // packets handed to the command handler
  std::uint64_t max_dispatch_per_turn = 0;
  std::uint64_t blocked_writes = 0;  // Serial.write calls that had to wait for ring space
  std::int64_t last_block_us = 0;    // how long the last of those stalled the loop
  std::int64_t max_block_us = 0;
};

// The course's receive routine, alex-protocol.md §4.3, re-implemented from
// the spec: bytes are gathered into a 140-byte window by counting only; once
// 140 are there the window is checked (magic, then XOR over dataSize bytes)
// and the counter starts again; bytes past the 140th wait in a 140-byte
// leftover buffer and are put at the front of the next window on the *next*
// call.  At most one frame per call.  Bytes beyond the leftover buffer's 140
// are lost (the course code would overrun memory; counted in leftover_lost()).
class CourseReceiver {
 public:
  enum class Result { Incomplete, Ok, BadMagic, BadChecksum, BadSize };
  // BadSize: dataSize > 100 with a matching XOR, or > 128; the course code
  // would read or copy past its buffers.  `out` is written only on Ok.
  Result deserialize(const std::uint8_t* chunk, std::size_t n, alex::Packet* out);
  std::size_t counter() const { return counter_; }      // bytes in the open window
  std::size_t leftover() const { return leftover_n_; }  // bytes waiting for the next call
  std::uint64_t leftover_lost() const { return leftover_lost_; }
  void reset();

 private:
  std::array<std::uint8_t, alex::kFrameSize> window_{};
  std::size_t counter_ = 0;
  std::array<std::uint8_t, alex::kFrameSize> leftover_{};
  std::size_t leftover_n_ = 0;
  std::uint64_t leftover_lost_ = 0;
};

class Firmware {
 public:
  // `emit`: bytes that have just reached the host (their stop bit ended at
  // now_us()).  `event`: one line for the log, about now_us().
  using Emit = std::function<void(const std::vector<std::uint8_t>&)>;
  using Event = std::function<void(const std::string&)>;

  // Faithful at 9600 baud with the default rings and loop, clock at 0.
  Firmware(MotionConfig motion, Emit emit, Event event);
  // Throws std::invalid_argument for rings < 2, loop_us < 1, or a baud whose
  // byte time is 0 (only the lenient model may run an instantaneous line:
  // construct with baud 0 and the model starts lenient).
  Firmware(MotionConfig motion, UartConfig uart, Emit emit, Event event, std::int64_t start_us = 0);

  // Modes.  set_lenient(false) with an instantaneous line returns false.
  bool set_lenient(bool on);
  bool lenient() const { return lenient_; }
  void set_strict(bool on);  // framing: counting (course) or resynchronising
  bool strict() const { return strict_; }
  void set_hello(HelloMode m);
  void set_message_after_stop(bool on) { message_after_stop_ = on; }
  Faults& faults() { return faults_; }

  // The host writes `n` bytes at `at_us` (clamped to now_us()): they start on
  // the line when the host's earlier bytes have gone, one byte time apart.
  void host_write(const std::uint8_t* p, std::size_t n, std::int64_t at_us);
  // When the last byte written so far will have arrived (<= now_us() if none).
  std::int64_t host_line_free_us() const { return host_line_free_; }

  // Runs the model up to `t_us` (no-op if earlier than now_us()).
  void run_until(std::int64_t t_us);
  std::int64_t now_us() const { return now_; }
  // The next moment something happens by itself (a byte arrives or leaves,
  // the loop has work); kNever when idle (motion runs continuously and needs
  // no events).
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  std::int64_t next_event_us() const;
  std::int64_t byte_us() const { return byte_us_; }
  const UartConfig& uart() const { return uart_; }

  // Compatibility for millisecond callers (the fuzz harness): host_write at
  // now_ms then run_until(now_ms); tick runs until now_ms.
  void receive(const std::uint8_t* p, std::size_t n, std::int64_t now_ms);
  void tick(std::int64_t now_ms) { run_until(now_ms * 1000); }

  // n random bytes (never 0xFF) from the firmware, like a stray debug print:
  // written by the next loop turn (faithful; blocking like any write) or at
  // once (lenient).
  void send_garbage(int n);
  // Forgets partial frames (both receivers).
  void reset_receiver();
  // Power cycle: motors off, counters zero, rings, lines and receivers empty,
  // HELLO needed again (require mode).  Faults and modes are kept.
  void reboot();

  bool moving() const { return motion_ != Motion::None; }
  const std::array<std::uint32_t, alex::kParams>& counters() const { return counters_; }
  const FirmwareStats& stats() const { return stats_; }
  const CourseReceiver& receiver() const { return course_; }
  std::size_t rx_ring_used() const { return rx_ring_.size(); }
  bool loop_blocked() const { return blocked_; }

 private:
  enum class Motion { None, Forward, Reverse, Left, Right };
  // One thing the loop still has to do in this turn: write bytes (label for
  // the log) or act (start/stop the motors ...).
  struct Step {
    std::vector<std::uint8_t> bytes;
    std::string label;
    std::function<void()> action;
  };

  void validate();
  std::int64_t turn_time() const;
  void on_arrival();
  void on_tx_done();
  void on_turn();
  void handle_chunk(const std::uint8_t* p, std::size_t n);
  void lenient_byte(std::uint8_t b);
  bool resync_next(alex::Packet* out, CourseReceiver::Result* result);
  void on_result(CourseReceiver::Result r, const alex::Packet& p);
  void dispatch(const alex::Packet& p);
  void reply(const alex::Packet& p);
  void write(std::vector<std::uint8_t> bytes, std::string label);
  void act(std::function<void()> f);
  void continue_steps();
  void start_tx(std::uint8_t b);
  void flush_drop_report();
  void start(Motion m, std::uint32_t amount, std::uint32_t speed);
  void stop(const char* why);
  void clear(std::uint32_t which);
  std::uint32_t cm_of(double ticks) const;
  void motion_tick(std::int64_t t_us);
  std::vector<std::uint8_t> garbage(int n);

  MotionConfig cfg_;
  UartConfig uart_;
  Emit emit_;
  Event event_;
  std::int64_t byte_us_ = 0;
  std::int64_t now_ = 0;

  bool lenient_ = false;
  bool strict_ = true;
  bool message_after_stop_ = false;
  bool desynced_ = false;  // counting: the last window had no magic
  HelloMode hello_ = HelloMode::Ignore;
  bool greeted_ = false;
  Faults faults_;
  std::uint64_t replies_ = 0;
  std::mt19937 rng_{12345};
  FirmwareStats stats_;

  // Host -> firmware line: (arrival time, byte), in arrival order.
  std::deque<std::pair<std::int64_t, std::uint8_t>> line_in_;
  std::int64_t host_line_free_ = 0;

  // Receive side.
  std::deque<std::uint8_t> rx_ring_;
  std::int64_t rx_work_since_ = 0;  // arrival of the oldest unread byte
  std::uint64_t drop_burst_ = 0;    // dropped since the loop last read
  CourseReceiver course_;
  std::vector<std::uint8_t> stream_;  // resynchronising receiver's buffer
  std::uint64_t skipped_ = 0;         // resync: bytes skipped, not yet reported

  // The loop.
  std::int64_t next_turn_at_ = 0;  // the loop is free from here; turns every loop_us
  std::int64_t turn_start_ = 0;
  std::uint64_t dispatched_this_turn_ = 0;
  int garbage_pending_ = 0;  // debug print for the next turn
  std::int64_t garbage_since_ = 0;
  std::deque<Step> steps_;
  std::size_t step_pos_ = 0;  // bytes of steps_.front() already written
  bool step_started_ = false;
  bool blocked_ = false;
  std::int64_t blocked_since_ = 0;

  // Transmit side.
  std::deque<std::uint8_t> tx_ring_;
  bool tx_busy_ = false;
  std::uint8_t tx_byte_ = 0;
  std::int64_t tx_done_at_ = 0;

  // Motion.
  Motion motion_ = Motion::None;
  std::int64_t last_tick_us_ = 0;
  double target_ = 0;  // ticks to go (0 = indefinitely)
  double done_ = 0;    // ticks made in this motion
  double rate_ = 0;    // ticks per ms
  double frac_ = 0;    // sub-tick remainder
  std::array<std::uint32_t, alex::kParams> counters_{};
  double fwd_ticks_for_dist_ = 0, rev_ticks_for_dist_ = 0;
};

}  // namespace curvebus::alexsim
