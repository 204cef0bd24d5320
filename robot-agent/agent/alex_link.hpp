// AlexLink: the host side of the Alex serial protocol, as the robot agent
// drives it (alex-protocol.md §4.4, §5; DESIGN.md "Robot agent and safety").
//
// A non-blocking state machine run by the agent's loop: call fd() for poll(),
// on_readable() when it is readable, and tick() at least every 10 ms.
//
//   Down ──open ok──► Settling ──settle time──► Hello ──reply or hello time──► Ready
//    ▲                                                                          │
//    └──── read/write error, EOF (device gone): close, reopen with backoff ◄────┘
//   Ready ──BAD_PACKET answer to a valid frame, or repeated timeouts──► Realign
//   Realign: trickle 0x00 bytes one at a time until any frame comes back; the
//            Arduino's 140-byte window then starts afresh ──► Ready
//
// Requests: one command outstanding, matched to the next reply by order (the
// protocol has no ids); a reply timeout resends up to `retries` times (a
// motion resend repeats the motion: the protocol has no idempotency), then
// completes with Timeout.  STOP jumps every queue: it is written at once,
// even while another request waits for its answer.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

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
  int retries = 2;           // resends after a timeout
  int reopen_min_ms = 100;
  int reopen_max_ms = 5000;
  int realign_byte_interval_ms = 0;  // 0: paced to the line (3 byte times + 2 ms)
  int realign_max_bytes = 600;       // then close and reopen (the "reboot Alex" recovery)
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
  SerialDown    // device not open, or lost while waiting
};
const char* outcome_name(Outcome o);

struct Reply {
  Outcome outcome = Outcome::Timeout;
  alex::Packet packet;  // the Arduino's packet (Ok / Status / errors)
  int attempts = 0;
  std::int64_t latency_us = 0;
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
};

class AlexLink {
 public:
  using Done = std::function<void(const Reply&)>;
  using StateChange = std::function<void(LinkState from, LinkState to, const std::string& why)>;

  explicit AlexLink(AlexLinkConfig config);
  ~AlexLink();

  void on_state_change(StateChange cb) { on_state_ = std::move(cb); }

  // Queues a COMMAND packet; `done` runs exactly once (from on_readable/tick).
  // `priority` (STOP) writes it at once, ahead of queued and outstanding ones.
  void submit(const alex::Packet& packet, Done done, bool priority = false);

  int fd() const;
  void on_readable(std::int64_t now_ms);
  void tick(std::int64_t now_ms);
  // Writes STOP right now if the device is open (shutdown path); no reply awaited.
  bool stop_now();

  LinkState state() const { return state_; }
  bool ready() const { return state_ == LinkState::Ready; }
  bool idle() const { return inflight_.empty() && queue_.empty(); }
  const LinkCounters& counters() const { return counters_; }
  const alex::DecoderStats& decoder_stats() const { return decoder_.stats(); }
  const std::string& last_error() const { return last_error_; }
  const AlexLinkConfig& config() const { return config_; }

 private:
  struct Request {
    alex::Packet packet;
    Done done;
    int attempts = 0;
    std::int64_t first_sent_ms = 0;
    std::int64_t sent_ms = 0;
    std::int64_t start_us = 0;
  };

  void set_state(LinkState s, const std::string& why, std::int64_t now_ms);
  void try_open(std::int64_t now_ms);
  void lose_device(const std::string& why, std::int64_t now_ms);
  bool write_packet(const alex::Packet& p, std::int64_t now_ms);
  void send_next(std::int64_t now_ms);
  void handle_packet(const alex::Packet& p, std::int64_t now_ms);
  void complete_front(Outcome o, const alex::Packet& p);
  void fail_all(Outcome o);
  int reply_timeout_ms() const;
  int realign_interval_ms() const;

  AlexLinkConfig config_;
  alex::SerialLink serial_;
  alex::StreamDecoder decoder_;
  LinkState state_ = LinkState::Down;
  std::int64_t state_since_ms_ = 0;
  std::int64_t next_open_ms_ = 0;
  int backoff_ms_ = 0;
  std::int64_t next_realign_byte_ms_ = 0;
  int realign_bytes_ = 0;
  int consecutive_timeouts_ = 0;
  bool realign_pending_ = false;
  std::deque<Request> queue_;     // waiting to be sent
  std::deque<Request> inflight_;  // sent, waiting for an answer (oldest first)
  LinkCounters counters_;
  std::string last_error_;
  StateChange on_state_;
};

}  // namespace curvebus::agent
