#include "alex_link.hpp"

#include <algorithm>
#include <chrono>

namespace curvebus::agent {

namespace {

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

// Milliseconds for `bytes` bytes of 10 bits on the line, rounded up.
int line_ms(int baud, int bytes) {
  return baud > 0 ? (bytes * 10 * 1000 + baud - 1) / baud : 0;
}

}  // namespace

bool is_motion(const alex::Packet& p) {
  if (p.type != static_cast<std::uint8_t>(alex::PacketType::Command)) return false;
  switch (static_cast<alex::Command>(p.command)) {
    case alex::Command::Forward:
    case alex::Command::Reverse:
    case alex::Command::TurnLeft:
    case alex::Command::TurnRight:
      return true;
    default:
      return false;
  }
}

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
    case Outcome::Superseded:
      return "superseded";
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
  // One frame each way, plus firmware time.
  return line_ms(config_.baud, 2 * static_cast<int>(alex::kFrameSize)) + 150;
}

int AlexLink::realign_interval_ms() const {
  if (config_.realign_byte_interval_ms > 0) return config_.realign_byte_interval_ms;
  // Room for the byte itself, the firmware's reaction and the first byte of
  // its answer: three byte times plus 2 ms (5 ms at 9600 baud).
  return line_ms(config_.baud, 3) + 2;
}

int AlexLink::quiet_ms() const {
  if (config_.quiet_ms > 0) return config_.quiet_ms;
  return line_ms(config_.baud, 2) + 1;
}

void AlexLink::set_state(LinkState s, const std::string& why, std::int64_t now_ms) {
  if (s == state_) return;
  LinkState from = state_;
  state_ = s;
  state_since_ms_ = now_ms;
  if (on_state_) on_state_(from, s, why);
}

void AlexLink::submit(const alex::Packet& packet, Done done) {
  if (!serial_.is_open()) {
    Reply reply;
    reply.outcome = Outcome::SerialDown;
    if (done) done(reply);
    return;
  }
  const std::int64_t t_us = now_us();
  Request r;
  r.packet = packet;
  r.done = std::move(done);
  r.start_us = t_us;
  queue_.push_back(std::move(r));
  send_next(t_us / 1000);
}

void AlexLink::request_stop(Done done) {
  const std::int64_t t_us = now_us();
  // Motion queued before the STOP must not run after it.
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (!is_motion(it->packet)) {
      ++it;
      continue;
    }
    Request r = std::move(*it);
    it = queue_.erase(it);
    ++counters_.superseded;
    Reply reply;
    reply.outcome = Outcome::Superseded;
    reply.latency_us = t_us - r.start_us;
    if (r.done) r.done(reply);
  }
  if (!stop_pending_) {
    stop_pending_ = true;
    stop_attempts_ = 0;
  }
  stop_waiters_.push_back(StopWaiter{std::move(done), t_us});
  send_next(t_us / 1000);
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

bool AlexLink::may_write(std::int64_t now_ms) const {
  if (state_ != LinkState::Ready || inflight_ || !serial_.is_open()) return false;
  const std::int64_t silent = now_ms - last_rx_ms_;
  if (silent < quiet_ms()) return false;
  // Part of a frame is arriving: wait for the rest (or for long enough that it
  // cannot be one: stray bytes never complete).
  if (decoder_.buffered() > 0 &&
      silent < line_ms(config_.baud, static_cast<int>(alex::kFrameSize)) + quiet_ms())
    return false;
  return true;
}

void AlexLink::send_next(std::int64_t now_ms) {
  if (!may_write(now_ms)) return;
  auto r = std::make_unique<Request>();
  if (stop_pending_) {
    r->packet = alex::make_command(alex::Command::Stop);
    r->is_stop = true;
    r->start_us = now_us();
    if (stop_attempts_ > 0) ++counters_.stop_resends;
    ++stop_attempts_;
  } else if (!queue_.empty()) {
    *r = std::move(queue_.front());
    queue_.pop_front();
    if (r->attempts > 0) ++counters_.retries;
  } else {
    return;
  }
  ++r->attempts;
  r->sent_ms = now_ms;
  const alex::Packet p = r->packet;
  inflight_ = std::move(r);
  write_packet(p, now_ms);
}

void AlexLink::finish_inflight(Outcome o, const alex::Packet& p) {
  if (!inflight_) return;
  std::unique_ptr<Request> r = std::move(inflight_);
  if (r->is_stop) {
    if (o != Outcome::Ok) return;  // not confirmed: the STOP stays pending
    stop_pending_ = false;
    ++counters_.stops;
    if (on_stop_confirmed_) on_stop_confirmed_(stop_attempts_);
    const std::int64_t t = now_us();
    std::vector<StopWaiter> waiters;
    waiters.swap(stop_waiters_);
    for (auto& w : waiters) {
      Reply reply;
      reply.outcome = Outcome::Ok;
      reply.packet = p;
      reply.attempts = stop_attempts_;
      reply.latency_us = t - w.start_us;
      if (w.done) w.done(reply);
    }
    stop_attempts_ = 0;
    return;
  }
  Reply reply;
  reply.outcome = o;
  reply.packet = p;
  reply.attempts = r->attempts;
  reply.latency_us = now_us() - r->start_us;
  if (r->done) r->done(reply);
}

void AlexLink::fail_all(Outcome o) {
  // The in-flight request and the queue fail; a pending STOP stays pending
  // (written first on the reopened device) but its waiters hear now.
  if (inflight_ && !inflight_->is_stop) finish_inflight(o, alex::Packet{});
  inflight_.reset();
  while (!queue_.empty()) {
    Request r = std::move(queue_.front());
    queue_.pop_front();
    Reply reply;
    reply.outcome = o;
    reply.attempts = r.attempts;
    reply.latency_us = now_us() - r.start_us;
    if (r.done) r.done(reply);
  }
  std::vector<StopWaiter> waiters;
  waiters.swap(stop_waiters_);
  for (auto& w : waiters) {
    Reply reply;
    reply.outcome = o;
    reply.attempts = stop_attempts_;
    reply.latency_us = now_us() - w.start_us;
    if (w.done) w.done(reply);
  }
}

void AlexLink::lose_device(const std::string& why, std::int64_t now_ms) {
  last_error_ = why;
  serial_.close();
  decoder_.reset();
  realign_pending_ = false;
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
  last_rx_ms_ = now_ms;
  set_state(LinkState::Settling, "opened " + config_.device, now_ms);
}

void AlexLink::start_realign(const std::string& why, std::int64_t now_ms) {
  set_state(LinkState::Realign, why, now_ms);
  ++counters_.realignments;
  realign_bytes_ = 0;
  realign_pending_ = false;
  decoder_.reset();
  next_realign_byte_ms_ = now_ms;
}

// An exchange failed (error reply or timeout): the Arduino's 140-byte window
// may hold the rest of what it lost, so nothing is written before it is
// re-aligned.  The request is resent after that (STOP: always), or completes
// with the failure when it has used its retries.
void AlexLink::after_failure(Outcome o, const alex::Packet& p, const std::string& why,
                             std::int64_t now_ms) {
  if (inflight_ && !inflight_->is_stop) {
    if (inflight_->attempts > config_.retries) {
      finish_inflight(o, p);
    } else {
      queue_.push_front(std::move(*inflight_));  // resent first after re-aligning
      inflight_.reset();
    }
  }
  inflight_.reset();  // a failed STOP stays pending and is written again
  start_realign(why, now_ms);
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
    last_rx_ms_ = now_ms;
    // The first byte of the Arduino's answer means its window has closed:
    // another filler byte now would open a new, misaligned one.
    if (state_ == LinkState::Realign) realign_pending_ = true;
    decoder_.feed(buf, *n);
    if (*n < sizeof buf) break;
  }
  alex::Packet p;
  while (decoder_.next(p)) {
    ++counters_.frames_in;
    unanswered_filler_ = 0;
    handle_packet(p, now_ms);
    if (!serial_.is_open()) return;
  }
}

void AlexLink::handle_packet(const alex::Packet& p, std::int64_t now_ms) {
  using alex::PacketType;
  using alex::Response;
  if (state_ == LinkState::Realign) {
    // Any frame means the Arduino's 140-byte window has just closed; what
    // failed is written again (send_next, once the line is quiet).
    realign_pending_ = false;
    realign_bytes_ = 0;
    unanswered_filler_ = 0;
    counting_receiver_ = true;
    set_state(LinkState::Ready, "re-aligned", now_ms);
    return;
  }
  if (state_ == LinkState::Hello) {
    set_state(LinkState::Ready, "hello answered", now_ms);
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
  if (!inflight_) {
    ++counters_.unexpected;
    return;
  }
  switch (o) {
    case Outcome::BadPacket:
    case Outcome::BadChecksum:
      // We only write valid frames: the Arduino lost bytes of ours (or its
      // framing), and its window may hold the rest.
      after_failure(o, p, std::string("arduino answered ") + outcome_name(o) + ": re-aligning",
                    now_ms);
      return;
    case Outcome::BadResponse: {
      // Firmware that waits for HELLO: greet it (nothing else is in flight:
      // the HELLO is the exchange) and write the request again.
      std::unique_ptr<Request> r = std::move(inflight_);
      if (r->is_stop) {
        // The STOP stays pending.
      } else if (r->attempts <= config_.retries) {
        queue_.push_front(std::move(*r));
      } else {
        inflight_ = std::move(r);
        finish_inflight(o, p);
      }
      alex::Packet hello{};
      hello.type = static_cast<std::uint8_t>(PacketType::Hello);
      set_state(LinkState::Hello, "arduino waits for HELLO", now_ms);
      write_packet(hello, now_ms);
      return;
    }
    case Outcome::Ok:
      // STOP confirmed here (finish_inflight).
      finish_inflight(o, p);
      return;
    default:
      if (inflight_->is_stop) {
        // STOP answered with something else than OK: not confirmed.
        after_failure(o, p, std::string("STOP answered ") + outcome_name(o), now_ms);
        return;
      }
      finish_inflight(o, p);
      return;
  }
}

void AlexLink::tick(std::int64_t now_ms) {
  switch (state_) {
    case LinkState::Down:
      if (now_ms >= next_open_ms_) try_open(now_ms);
      return;
    case LinkState::Settling:
      if (now_ms - state_since_ms_ >= config_.settle_ms && stop_pending_) {
        // A STOP is owed: it is the first frame (firmware that needs a HELLO
        // first answers BAD_RESPONSE, and gets its HELLO then).
        backoff_ms_ = 0;
        set_state(LinkState::Ready, "settled; STOP first", now_ms);
        send_next(now_ms);
        return;
      }
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
        if (now_ms - last_rx_ms_ > 2 * reply_timeout_ms()) {
          realign_pending_ = false;
          decoder_.reset();
          next_realign_byte_ms_ = now_ms;
        }
        return;
      }
      if (now_ms >= next_realign_byte_ms_) {
        if (unanswered_filler_ >= config_.realign_max_bytes) {
          lose_device("could not re-align the Arduino; reopening the port", now_ms);
          return;
        }
        if (realign_bytes_ > static_cast<int>(alex::kFrameSize)) {
          // A full window of filler and no answer: this firmware does not
          // frame by counting (it resynchronises by itself), or the bytes were
          // lost.  Carry on; later timeouts resend without re-aligning.
          counting_receiver_ = false;
          realign_bytes_ = 0;
          set_state(LinkState::Ready, "no answer to a window of filler: resending", now_ms);
          send_next(now_ms);
          return;
        }
        const std::uint8_t zero = 0;
        Status s = serial_.write_all(&zero, 1, 100);
        if (!s) {
          lose_device("write failed: " + s.message(), now_ms);
          return;
        }
        ++realign_bytes_;
        ++unanswered_filler_;
        next_realign_byte_ms_ = now_ms + realign_interval_ms();
      }
      return;
    case LinkState::Ready:
      break;
  }
  if (!inflight_) {
    send_next(now_ms);
    return;
  }
  if (now_ms - inflight_->sent_ms < reply_timeout_ms()) return;
  // No (complete) answer: the Arduino lost bytes of the request, or its
  // window is misaligned and still open.  A counting receiver is re-aligned
  // first; firmware known to resynchronise by itself gets the frame again.
  ++counters_.timeouts;
  if (counting_receiver_) {
    after_failure(Outcome::Timeout, alex::Packet{}, "no answer: re-aligning", now_ms);
    return;
  }
  if (inflight_->is_stop) {
    inflight_.reset();  // the STOP stays pending: written again now
  } else if (inflight_->attempts > config_.retries) {
    finish_inflight(Outcome::Timeout, alex::Packet{});
  } else {
    queue_.push_front(std::move(*inflight_));
    inflight_.reset();
  }
  send_next(now_ms);
}

}  // namespace curvebus::agent
