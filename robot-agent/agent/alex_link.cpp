#include "alex_link.hpp"

#include <algorithm>
#include <chrono>

namespace curvebus::agent {

namespace {
std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

const char* link_state_name(LinkState s) {
  switch (s) {
    case LinkState::Down:
      return "down";
    case LinkState::Settling:
      return "settling";
    case LinkState::Hello:
      return "hello";
    case LinkState::Ready:
      return "ready";
    case LinkState::Realign:
      return "realign";
  }
  return "?";
}

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::Ok:
      return "ok";
    case Outcome::Status:
      return "status";
    case Outcome::BadPacket:
      return "arduino-bad-packet";
    case Outcome::BadChecksum:
      return "arduino-bad-checksum";
    case Outcome::BadCommand:
      return "arduino-bad-command";
    case Outcome::BadResponse:
      return "arduino-bad-response";
    case Outcome::Timeout:
      return "timeout";
    case Outcome::SerialDown:
      return "serial-down";
  }
  return "?";
}

AlexLink::AlexLink(AlexLinkConfig config) : config_(std::move(config)) {}

AlexLink::~AlexLink() {
  serial_.close();
}

int AlexLink::fd() const {
  return serial_.fd();
}

int AlexLink::reply_timeout_ms() const {
  if (config_.reply_timeout_ms > 0) return config_.reply_timeout_ms;
  // One frame each way at 10 bits a byte, plus firmware time.
  const int line_ms = config_.baud > 0 ? (2 * alex::kFrameSize * 10 * 1000) / config_.baud : 0;
  return line_ms + 150;
}

int AlexLink::realign_interval_ms() const {
  if (config_.realign_byte_interval_ms > 0) return config_.realign_byte_interval_ms;
  // Room for the byte itself, the firmware's reaction and the first byte of
  // its answer: three byte times plus 2 ms (5 ms at 9600 baud).
  const int byte_ms = config_.baud > 0 ? (10 * 1000 + config_.baud - 1) / config_.baud : 0;
  return 3 * byte_ms + 2;
}

void AlexLink::set_state(LinkState s, const std::string& why, std::int64_t now_ms) {
  if (s == state_) return;
  LinkState from = state_;
  state_ = s;
  state_since_ms_ = now_ms;
  if (on_state_) on_state_(from, s, why);
}

void AlexLink::submit(const alex::Packet& packet, Done done, bool priority) {
  Request r;
  r.packet = packet;
  r.done = std::move(done);
  r.start_us = now_us();
  if (!serial_.is_open()) {
    Reply reply;
    reply.outcome = Outcome::SerialDown;
    r.done(reply);
    return;
  }
  if (priority) {
    // STOP goes on the wire now; its answer follows those already in flight.
    const std::int64_t t = now_us() / 1000;
    r.attempts = 1;
    r.first_sent_ms = r.sent_ms = t;
    if (!write_packet(r.packet, t)) {
      Reply reply;
      reply.outcome = Outcome::SerialDown;
      r.done(reply);
      return;
    }
    inflight_.push_back(std::move(r));
    return;
  }
  queue_.push_back(std::move(r));
  send_next(now_us() / 1000);
}

bool AlexLink::write_packet(const alex::Packet& p, std::int64_t now_ms) {
  const auto frame = alex::encode_frame(p);
  Status s = serial_.write_all(frame.data(), frame.size(), 1000);
  if (!s) {
    lose_device("write failed: " + s.message(), now_ms);
    return false;
  }
  ++counters_.frames_out;
  return true;
}

void AlexLink::send_next(std::int64_t now_ms) {
  if (state_ != LinkState::Ready || !inflight_.empty() || queue_.empty()) return;
  Request r = std::move(queue_.front());
  queue_.pop_front();
  r.attempts = 1;
  r.first_sent_ms = r.sent_ms = now_ms;
  alex::Packet p = r.packet;
  inflight_.push_back(std::move(r));
  write_packet(p, now_ms);
}

void AlexLink::complete_front(Outcome o, const alex::Packet& p) {
  if (inflight_.empty()) return;
  Request r = std::move(inflight_.front());
  inflight_.pop_front();
  Reply reply;
  reply.outcome = o;
  reply.packet = p;
  reply.attempts = r.attempts;
  reply.latency_us = now_us() - r.start_us;
  if (r.done) r.done(reply);
}

void AlexLink::fail_all(Outcome o) {
  alex::Packet none{};
  while (!inflight_.empty()) complete_front(o, none);
  while (!queue_.empty()) {
    inflight_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    complete_front(o, none);
  }
}

void AlexLink::lose_device(const std::string& why, std::int64_t now_ms) {
  last_error_ = why;
  serial_.close();
  decoder_.reset();
  backoff_ms_ =
      backoff_ms_ == 0 ? config_.reopen_min_ms : std::min(backoff_ms_ * 2, config_.reopen_max_ms);
  next_open_ms_ = now_ms + backoff_ms_;
  set_state(LinkState::Down, why, now_ms);
  fail_all(Outcome::SerialDown);
}

void AlexLink::try_open(std::int64_t now_ms) {
  Status s = serial_.open(config_.device, config_.baud);
  if (!s) {
    last_error_ = s.message();
    backoff_ms_ =
        backoff_ms_ == 0 ? config_.reopen_min_ms : std::min(backoff_ms_ * 2, config_.reopen_max_ms);
    next_open_ms_ = now_ms + backoff_ms_;
    return;
  }
  ++counters_.reopens;
  decoder_.reset();
  consecutive_timeouts_ = 0;
  set_state(LinkState::Settling, "opened " + config_.device, now_ms);
}

bool AlexLink::stop_now() {
  if (!serial_.is_open()) return false;
  auto frame = alex::encode_frame(alex::make_command(alex::Command::Stop));
  return serial_.write_all(frame.data(), frame.size(), 500).ok();
}

void AlexLink::on_readable(std::int64_t now_ms) {
  if (!serial_.is_open()) return;
  std::uint8_t buf[1024];
  while (true) {
    auto n = serial_.read_some(buf, sizeof buf);
    if (!n) {
      lose_device("read failed: " + n.status().message(), now_ms);
      return;
    }
    if (*n == 0) break;
    // The first byte of the Arduino's answer means its window has closed:
    // another filler byte now would open a new, misaligned one.
    if (state_ == LinkState::Realign) realign_pending_ = true;
    decoder_.feed(buf, *n);
    if (*n < sizeof buf) break;
  }
  alex::Packet p;
  while (decoder_.next(p)) {
    ++counters_.frames_in;
    handle_packet(p, now_ms);
    if (!serial_.is_open()) return;
  }
}

void AlexLink::handle_packet(const alex::Packet& p, std::int64_t now_ms) {
  using alex::PacketType;
  using alex::Response;
  if (state_ == LinkState::Realign) {
    // Any frame means the Arduino's 140-byte window has just closed.
    realign_pending_ = false;
    realign_bytes_ = 0;
    set_state(LinkState::Ready, "re-aligned", now_ms);
    // Resend what was waiting for an answer; the garbled frame got none.
    for (auto& r : inflight_) {
      r.sent_ms = now_ms;
      ++r.attempts;
    }
    for (auto& r : inflight_) write_packet(r.packet, now_ms);
    send_next(now_ms);
    return;
  }
  if (state_ == LinkState::Hello) {
    set_state(LinkState::Ready, "hello answered", now_ms);
    send_next(now_ms);
    return;
  }
  if (p.type == static_cast<std::uint8_t>(PacketType::Message)) {
    ++counters_.messages;
    return;
  }
  Outcome o;
  if (p.type == static_cast<std::uint8_t>(PacketType::Response)) {
    o = p.command == static_cast<std::uint8_t>(Response::Status) ? Outcome::Status : Outcome::Ok;
  } else if (p.type == static_cast<std::uint8_t>(PacketType::Error)) {
    switch (static_cast<Response>(p.command)) {
      case Response::BadPacket:
        o = Outcome::BadPacket;
        break;
      case Response::BadChecksum:
        o = Outcome::BadChecksum;
        break;
      case Response::BadCommand:
        o = Outcome::BadCommand;
        break;
      case Response::BadResponse:
        o = Outcome::BadResponse;
        break;
      default:
        o = Outcome::BadCommand;
        break;
    }
  } else {
    ++counters_.unexpected;
    return;
  }
  if (inflight_.empty()) {
    ++counters_.unexpected;
    return;
  }
  consecutive_timeouts_ = 0;
  if (o == Outcome::BadPacket) {
    // We only send valid frames: a bad-magic answer means the Arduino lost its
    // framing (a stray byte).  Re-align it, then resend what is in flight.
    set_state(LinkState::Realign, "arduino reported a bad packet: re-aligning", now_ms);
    ++counters_.realignments;
    realign_bytes_ = 0;
    realign_pending_ = false;
    next_realign_byte_ms_ = now_ms;
    if (!inflight_.empty() && inflight_.front().attempts > config_.retries) {
      complete_front(Outcome::BadPacket, p);
    }
    return;
  }
  if (o == Outcome::BadResponse) {
    // Firmware that waits for HELLO: greet it and resend.
    alex::Packet hello{};
    hello.type = static_cast<std::uint8_t>(PacketType::Hello);
    write_packet(hello, now_ms);
    set_state(LinkState::Hello, "arduino waits for HELLO", now_ms);
    if (!inflight_.empty() && inflight_.front().attempts <= config_.retries) {
      Request r = std::move(inflight_.front());
      inflight_.pop_front();
      queue_.push_front(std::move(r));
    } else {
      complete_front(Outcome::BadResponse, p);
    }
    return;
  }
  if (o == Outcome::BadChecksum && inflight_.front().attempts <= config_.retries) {
    // Our frame was corrupted on the line and not acted on: send it again.
    Request& front = inflight_.front();
    ++front.attempts;
    ++counters_.retries;
    front.sent_ms = now_ms;
    write_packet(front.packet, now_ms);
    return;
  }
  complete_front(o, p);
  send_next(now_ms);
}

void AlexLink::tick(std::int64_t now_ms) {
  switch (state_) {
    case LinkState::Down:
      if (now_ms >= next_open_ms_) try_open(now_ms);
      return;
    case LinkState::Settling:
      if (now_ms - state_since_ms_ >= config_.settle_ms) {
        alex::Packet hello{};
        hello.type = static_cast<std::uint8_t>(alex::PacketType::Hello);
        if (!write_packet(hello, now_ms)) return;
        set_state(LinkState::Hello, "sent HELLO", now_ms);
      }
      return;
    case LinkState::Hello:
      // Course firmware ignores HELLO: silence is fine.
      if (now_ms - state_since_ms_ >= config_.hello_wait_ms) {
        backoff_ms_ = 0;
        set_state(LinkState::Ready, "ready", now_ms);
        send_next(now_ms);
      }
      return;
    case LinkState::Realign:
      if (realign_pending_) {
        // An answer is arriving; if it never completes, start over.
        if (now_ms - next_realign_byte_ms_ > 4 * reply_timeout_ms()) {
          realign_pending_ = false;
          decoder_.reset();
        }
        return;
      }
      if (now_ms >= next_realign_byte_ms_) {
        if (realign_bytes_ >= config_.realign_max_bytes) {
          lose_device("could not re-align the Arduino; reopening the port", now_ms);
          return;
        }
        const std::uint8_t zero = 0;
        Status s = serial_.write_all(&zero, 1, 100);
        if (!s) {
          lose_device("write failed: " + s.message(), now_ms);
          return;
        }
        ++realign_bytes_;
        next_realign_byte_ms_ = now_ms + realign_interval_ms();
      }
      return;
    case LinkState::Ready:
      break;
  }
  if (inflight_.empty()) {
    send_next(now_ms);
    return;
  }
  Request& front = inflight_.front();
  if (now_ms - front.sent_ms < reply_timeout_ms()) return;
  ++counters_.timeouts;
  ++consecutive_timeouts_;
  if (consecutive_timeouts_ >= 3) {
    // Silence on repeated valid frames: the Arduino may have lost framing.
    consecutive_timeouts_ = 0;
    set_state(LinkState::Realign, "no answer to 3 frames: re-aligning", now_ms);
    ++counters_.realignments;
    realign_bytes_ = 0;
    realign_pending_ = false;
    next_realign_byte_ms_ = now_ms;
    if (front.attempts > config_.retries) complete_front(Outcome::Timeout, alex::Packet{});
    return;
  }
  if (front.attempts > config_.retries) {
    complete_front(Outcome::Timeout, alex::Packet{});
    send_next(now_ms);
    return;
  }
  ++front.attempts;
  ++counters_.retries;
  front.sent_ms = now_ms;
  write_packet(front.packet, now_ms);
}

}  // namespace curvebus::agent
