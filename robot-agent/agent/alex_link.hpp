// AlexLink: the host side of the Alex serial protocol, as the robot agent
// drives it (alex-protocol.md §4.4, §5, §10; DESIGN.md "Robot agent and
// safety"), safe by construction against what a real Uno does: it drops bytes
// that arrive while its 63-byte receive ring is full, and it reads nothing
// while it pushes a 140-byte reply through its transmit ring (~79 ms at 9600
// baud).  So the host never writes while the Arduino may be answering.
//
// A non-blocking state machine run by the agent's loop: call fd() for poll(),
// on_readable() when it is readable, and tick() at least every 5 ms.
//
//   Down ──open ok──► Settling ──settle time──► Hello ──reply or hello time──► Ready
//    ▲                                                                          │
//    └──── read/write error, EOF (device gone): close, reopen with backoff ◄────┘
//   Ready ──error reply (BAD_PACKET, BAD_CHECKSUM) or no reply──► Realign
//   Realign: trickle one 0x00 at a time until any frame comes back (the
//            Arduino's 140-byte window then closes, wherever it was) ──► Ready;
//            141 unanswered fillers mean firmware that resynchronises by
//            itself (no counting window): ──► Ready, and later timeouts just
//            resend; `realign_max_bytes` unanswered in all ──► reopen.
//
// The write rule (the whole safety argument rests on it): a frame is written
// only in Ready, with NO exchange in flight, after the line has been silent
// for `quiet` (two byte times + 1 ms) with no partial frame received — so the
// Arduino is back in its loop, reading, and not sending an unsolicited frame
// (a MESSAGE) either.  At most one frame is ever in flight.
//
// What is written next, when the rule allows:
//   1. STOP, while a STOP is pending (stop decided, not yet confirmed);
//   2. otherwise the oldest queued request.
// STOP (request_stop: user STOP, e-stop, dead-man, release, shutdown) never
// interrupts the exchange in flight; it discards every queued MOTION request
// (completed SUPERSEDED, never written) — a motion queued before a STOP must
// not run after it — and keeps queued GET_STATS / CLEAR_STATS behind it.
// STOP is resent after every failure (error reply or timeout, after
// re-aligning) until the Arduino answers OK: "confirmed".  It stays pending
// through re-alignment and through the device going away and coming back
// (written first after the reopen's settle time).  Every stop waiter completes
// once, at confirmation (Ok) — or SerialDown if the device is lost meanwhile,
// the STOP staying pending for the reopened device.
//
// Other requests: a timeout or an error reply re-aligns, then resends up to
// `retries` times (a motion resend repeats the motion: the protocol has no
// idempotency), then completes with that outcome.
//
// Worst case from "stop decided" to "STOP confirmed", with F = one 140-byte
// frame on the line (1400 bits / baud: 145.6 ms at the Uno's 9615 baud),
// X = one exchange (request + reply = 2F + firmware time ≈ 291 ms at 9600),
// T = reply timeout (2F + 150 ms), z = one re-alignment byte (3 byte times
// + 2 ms ≈ 5.1 ms), q = the quiet gap (≈ 3 ms), M = one unsolicited frame:
//   clean line:                  X (the exchange in flight) + q + X          ≈ 585 ms
//   + firmware that sends a MESSAGE after a reply:                 + F       ≈ 731 ms
//   the exchange in flight got no answer (reply lost on the line):
//                                T + k·z (k ≤ 140 zeros) + F + q + X     ≤ 1.59 s
// and each failed STOP attempt (only on a corrupted line) adds T + 140·z + F.
// The Arduino is told (last byte of the STOP in its ring) F before confirmation.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "alex/packet.hpp"
#include "alex/serial_link.hpp"
#include "alex/stream_decoder.hpp"

namespace curvebus::agent {

struct AlexLinkConfig {
  std::string device = "/dev/ttyACM0";
  int baud = 9600;
  int settle_ms = 2000;      // opening a real Uno resets it
  int hello_wait_ms = 300;   // how long to wait for a HELLO answer
  int reply_timeout_ms = 0;  // 0: two frames of line time + 150 ms
  int retries = 2;           // resends of a request (not STOP: resent until confirmed)
  int reopen_min_ms = 100;
  int reopen_max_ms = 5000;
  int realign_byte_interval_ms = 0;  // 0: paced to the line (3 byte times + 2 ms)
  int realign_max_bytes = 600;       // filler bytes never answered, then reopen ("reboot Alex")
  int quiet_ms = 0;                  // 0: two byte times + 1 ms of silence before a write
};

enum class LinkState { Down, Settling, Hello, Ready, Realign };
const char* link_state_name(LinkState s);

enum class Outcome {
  Ok,           // RESPONSE/RESP_OK
  Status,       // RESPONSE/RESP_STATUS with params
  BadPacket,    // ERROR/RESP_BAD_PACKET
  BadChecksum,  // ERROR/RESP_BAD_CHECKSUM
  BadCommand,   // ERROR/RESP_BAD_COMMAND
  BadResponse,  // ERROR/RESP_BAD_RESPONSE (firmware waits for HELLO)
  Timeout,      // no answer after every retry
  SerialDown,   // device not open, or lost while waiting
  Superseded    // a motion discarded by a STOP before it was written
};
const char* outcome_name(Outcome o);

struct Reply {
  Outcome outcome = Outcome::Timeout;
  alex::Packet packet;          // the Arduino's packet (Ok / Status / errors)
  int attempts = 0;             // frames written for this request (STOP: for this stop)
  std::int64_t latency_us = 0;  // submit (stop decided) to completion
};

struct LinkCounters {
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t retries = 0;
  std::uint64_t realignments = 0;
  std::uint64_t reopens = 0;
  std::uint64_t unexpected = 0;  // replies with nothing outstanding
  std::uint64_t messages = 0;    // PACKET_TYPE_MESSAGE texts from the Arduino
  std::uint64_t stops = 0;       // STOPs confirmed
  std::uint64_t stop_resends = 0;
  std::uint64_t superseded = 0;
};

class AlexLink {
 public:
  using Done = std::function<void(const Reply&)>;
  using StateChange = std::function<void(LinkState from, LinkState to, const std::string& why)>;

  explicit AlexLink(AlexLinkConfig config);
  ~AlexLink();

  void on_state_change(StateChange cb) { on_state_ = std::move(cb); }
  // Runs at every STOP confirmation (attempts: STOP frames it took), also for
  // a STOP whose waiters already heard SerialDown.
  void on_stop_confirmed(std::function<void(int attempts)> cb) {
    on_stop_confirmed_ = std::move(cb);
  }

  // Queues a COMMAND packet (not STOP: use request_stop); `done` runs exactly
  // once, from on_readable / tick / request_stop (never from submit itself
  // unless the device is not open: then at once, with SerialDown).
  void submit(const alex::Packet& packet, Done done);
  // Stop decided now: STOP is written as the next frame (see the header
  // comment).  `done` (may be empty) runs once, at confirmation.  Queued
  // motion completes SUPERSEDED before this returns.  Accepted in every state.
  void request_stop(Done done);
  bool stop_pending() const { return stop_pending_; }

  int fd() const;
  void on_readable(std::int64_t now_ms);
  void tick(std::int64_t now_ms);

  LinkState state() const { return state_; }
  bool ready() const { return state_ == LinkState::Ready; }
  bool idle() const { return !inflight_ && queue_.empty() && !stop_pending_; }
  const LinkCounters& counters() const { return counters_; }
  const alex::DecoderStats& decoder_stats() const { return decoder_.stats(); }
  const std::string& last_error() const { return last_error_; }
  const AlexLinkConfig& config() const { return config_; }
  // Line-derived times (ms), for logs and tests.
  int reply_timeout_ms() const;
  int realign_interval_ms() const;
  int quiet_ms() const;

 private:
  struct Request {
    alex::Packet packet;
    Done done;
    int attempts = 0;
    std::int64_t sent_ms = 0;
    std::int64_t start_us = 0;
    bool is_stop = false;
  };
  struct StopWaiter {
    Done done;
    std::int64_t start_us = 0;
  };

  void set_state(LinkState s, const std::string& why, std::int64_t now_ms);
  void try_open(std::int64_t now_ms);
  void lose_device(const std::string& why, std::int64_t now_ms);
  bool write_packet(const alex::Packet& p, std::int64_t now_ms);
  bool may_write(std::int64_t now_ms) const;
  void send_next(std::int64_t now_ms);
  void handle_packet(const alex::Packet& p, std::int64_t now_ms);
  void finish_inflight(Outcome o, const alex::Packet& p);
  void start_realign(const std::string& why, std::int64_t now_ms);
  void after_failure(Outcome o, const alex::Packet& p, const std::string& why, std::int64_t now_ms);
  void fail_all(Outcome o);

  AlexLinkConfig config_;
  alex::SerialLink serial_;
  alex::StreamDecoder decoder_;
  LinkState state_ = LinkState::Down;
  std::int64_t state_since_ms_ = 0;
  std::int64_t next_open_ms_ = 0;
  int backoff_ms_ = 0;
  std::int64_t next_realign_byte_ms_ = 0;
  int realign_bytes_ = 0;
  bool realign_pending_ = false;
  int unanswered_filler_ = 0;           // filler bytes sent since the last frame from the Arduino
  bool counting_receiver_ = true;       // false once a window of filler got no answer
  std::int64_t last_rx_ms_ = -1000000;  // when the last byte came from the Arduino

  std::unique_ptr<Request> inflight_;  // the one exchange on the line
  std::deque<Request> queue_;          // waiting to be written
  bool stop_pending_ = false;
  int stop_attempts_ = 0;  // STOP frames written for the pending stop
  std::vector<StopWaiter> stop_waiters_;

  LinkCounters counters_;
  std::string last_error_;
  StateChange on_state_;
  std::function<void(int)> on_stop_confirmed_;
};

bool is_motion(const alex::Packet& p);

}  // namespace curvebus::agent
