#include "sim/sim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace curvebus::alexsim {

using alex::Command;
using alex::kFrameSize;
using alex::Packet;
using alex::PacketType;
using alex::Response;

bool parse_hello_mode(const std::string& s, HelloMode& out) {
  if (s == "ignore")
    out = HelloMode::Ignore;
  else if (s == "answer")
    out = HelloMode::Answer;
  else if (s == "require")
    out = HelloMode::Require;
  else
    return false;
  return true;
}

std::int64_t byte_time_us(int baud) {
  if (baud <= 0) return 0;
  constexpr long kCpuHz = 16000000;
  long ubrr = (kCpuHz / 4 / baud - 1) / 2;  // double speed: 8 clocks per bit per UBRR step
  long clocks_per_step = 8;
  if (baud == 57600 || ubrr > 4095) {
    ubrr = (kCpuHz / 8 / baud - 1) / 2;
    clocks_per_step = 16;
  }
  // 10 bits of (clocks_per_step * (ubrr + 1)) clocks at 16 clocks per µs.
  return 10 * clocks_per_step * (ubrr + 1) / 16;
}

namespace {
enum Counter {
  kLeftFwd = 0,
  kRightFwd,
  kLeftRev,
  kRightRev,
  kLeftFwdTurns,
  kRightFwdTurns,
  kLeftRevTurns,
  kRightRevTurns,
  kFwdDist,
  kRevDist,
};
constexpr std::uint8_t kMagicBytes[4] = {0xFF, 0xFE, 0xFD, 0xFC};
constexpr std::size_t kMaxDataSize = 128;  // the frame's buffer field
constexpr std::size_t kMaxResyncBuffer = 8 * kFrameSize;

std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

std::string ms_text(std::int64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", static_cast<double>(us) / 1000.0);
  return buf;
}
}  // namespace

// ---------------------------------------------------------------------------
// CourseReceiver

void CourseReceiver::reset() {
  counter_ = 0;
  leftover_n_ = 0;
}

CourseReceiver::Result CourseReceiver::deserialize(const std::uint8_t* chunk, std::size_t n,
                                                   Packet* out) {
  // What this call sees: last call's leftover first, then the new chunk.
  std::array<std::uint8_t, kFrameSize> carried = leftover_;
  const std::size_t carried_n = leftover_n_;
  leftover_n_ = 0;
  const std::size_t total = carried_n + n;
  const auto byte_at = [&](std::size_t i) {
    return i < carried_n ? carried[i] : chunk[i - carried_n];
  };
  std::size_t i = 0;
  while (i < total && counter_ < kFrameSize) window_[counter_++] = byte_at(i++);
  if (counter_ < kFrameSize) return Result::Incomplete;
  // The window is complete: what is left waits for the next call.
  counter_ = 0;
  for (; i < total; ++i) {
    if (leftover_n_ < leftover_.size())
      leftover_[leftover_n_++] = byte_at(i);
    else
      ++leftover_lost_;
  }
  if (le32(window_.data()) != alex::kMagic) return Result::BadMagic;
  const std::uint32_t size = le32(window_.data() + 4);
  if (size > kMaxDataSize) return Result::BadSize;
  const std::uint8_t* payload = window_.data() + alex::kPayloadOffset;
  if (alex::checksum(payload, size) != window_[alex::kChecksumOffset]) return Result::BadChecksum;
  if (size > alex::kPacketSize) return Result::BadSize;
  std::array<std::uint8_t, alex::kPacketSize> packet{};
  std::copy(payload, payload + size, packet.begin());
  *out = alex::deserialize(packet.data());
  return Result::Ok;
}

// ---------------------------------------------------------------------------
// Firmware: set-up and modes

Firmware::Firmware(MotionConfig motion, Emit emit, Event event)
    : Firmware(motion, UartConfig{}, std::move(emit), std::move(event)) {}

Firmware::Firmware(MotionConfig motion, UartConfig uart, Emit emit, Event event,
                   std::int64_t start_us)
    : cfg_(motion), uart_(uart), emit_(std::move(emit)), event_(std::move(event)) {
  validate();
  byte_us_ = byte_time_us(uart_.baud);
  now_ = host_line_free_ = next_turn_at_ = last_tick_us_ = start_us;
  if (byte_us_ == 0) {
    lenient_ = true;
    strict_ = false;
  }
}

void Firmware::validate() {
  if (uart_.rx_ring < 2 || uart_.tx_ring < 2)
    throw std::invalid_argument("alex-sim: a UART ring needs at least 2 slots");
  if (uart_.loop_us < 1) throw std::invalid_argument("alex-sim: a loop turn takes at least 1 us");
}

bool Firmware::set_lenient(bool on) {
  if (!on && byte_us_ == 0) return false;
  if (on == lenient_) return true;
  lenient_ = on;
  set_strict(!on);
  if (on) {
    // What the loop had not read yet is handled now; a blocked write finishes.
    std::vector<std::uint8_t> pending(rx_ring_.begin(), rx_ring_.end());
    rx_ring_.clear();
    for (auto b : pending) lenient_byte(b);
    continue_steps();
  } else {
    next_turn_at_ = std::max(next_turn_at_, now_);
  }
  return true;
}

void Firmware::set_strict(bool on) {
  strict_ = on;
  reset_receiver();
}

void Firmware::set_hello(HelloMode m) {
  hello_ = m;
  greeted_ = false;
}

void Firmware::reset_receiver() {
  desynced_ = false;
  course_.reset();
  stream_.clear();
  skipped_ = 0;
}

void Firmware::reboot() {
  stop("reboot");
  counters_.fill(0);
  fwd_ticks_for_dist_ = rev_ticks_for_dist_ = 0;
  greeted_ = false;
  reset_receiver();
  line_in_.clear();
  host_line_free_ = now_;
  rx_ring_.clear();
  drop_burst_ = 0;
  tx_ring_.clear();
  tx_busy_ = false;
  steps_.clear();
  step_pos_ = 0;
  step_started_ = false;
  blocked_ = false;
  garbage_pending_ = 0;
  next_turn_at_ = now_;
  event_("reboot");
}

// ---------------------------------------------------------------------------
// Time

void Firmware::host_write(const std::uint8_t* p, std::size_t n, std::int64_t at_us) {
  const std::int64_t start = std::max({at_us, now_, host_line_free_});
  for (std::size_t i = 0; i < n; ++i)
    line_in_.emplace_back(start + static_cast<std::int64_t>(i + 1) * byte_us_, p[i]);
  host_line_free_ = start + static_cast<std::int64_t>(n) * byte_us_;
}

void Firmware::receive(const std::uint8_t* p, std::size_t n, std::int64_t now_ms) {
  host_write(p, n, now_ms * 1000);
  run_until(now_ms * 1000);
}

std::int64_t Firmware::turn_time() const {
  std::int64_t work = kNever;
  if (!rx_ring_.empty()) work = rx_work_since_;
  if (garbage_pending_ > 0) work = std::min(work, garbage_since_);
  if (work == kNever) return kNever;
  if (work <= next_turn_at_) return next_turn_at_;
  // Turns follow each other every loop_us; the first one at or after `work`.
  const std::int64_t turns = (work - next_turn_at_ + uart_.loop_us - 1) / uart_.loop_us;
  return next_turn_at_ + turns * uart_.loop_us;
}

std::int64_t Firmware::next_event_us() const {
  std::int64_t next = kNever;
  if (!line_in_.empty()) next = line_in_.front().first;
  if (tx_busy_) next = std::min(next, tx_done_at_);
  if (!lenient_ && !blocked_) next = std::min(next, turn_time());
  return next;
}

void Firmware::run_until(std::int64_t t_us) {
  if (t_us < now_) return;
  while (true) {
    const std::int64_t next = next_event_us();
    if (next > t_us) break;
    now_ = std::max(now_, next);
    motion_tick(now_);
    // At equal times: the receive interrupt, then the transmit one, then the loop.
    if (!line_in_.empty() && line_in_.front().first <= now_)
      on_arrival();
    else if (tx_busy_ && tx_done_at_ <= now_)
      on_tx_done();
    else
      on_turn();
  }
  now_ = t_us;
  motion_tick(now_);
}

// ---------------------------------------------------------------------------
// The UART and the loop

void Firmware::on_arrival() {
  std::vector<std::uint8_t> arrived;
  while (!line_in_.empty() && line_in_.front().first <= now_) {
    arrived.push_back(line_in_.front().second);
    line_in_.pop_front();
  }
  stats_.rx_bytes += arrived.size();
  if (lenient_) {
    dispatched_this_turn_ = 0;
    if (strict_) {
      for (auto b : arrived) lenient_byte(b);
    } else {
      stream_.insert(stream_.end(), arrived.begin(), arrived.end());
      Packet p;
      CourseReceiver::Result r;
      while (resync_next(&p, &r)) {
        on_result(r, p);
        continue_steps();
      }
    }
    return;
  }
  // The receive interrupt: into the ring while it has room, else lost.
  for (auto b : arrived) {
    if (rx_ring_.size() + 1 < uart_.rx_ring) {
      if (rx_ring_.empty()) rx_work_since_ = now_;
      rx_ring_.push_back(b);
      stats_.rx_ring_peak = std::max(stats_.rx_ring_peak, rx_ring_.size());
    } else {
      ++stats_.rx_dropped;
      ++drop_burst_;
    }
  }
}

void Firmware::lenient_byte(std::uint8_t b) {
  // Lenient model: every frame handled the moment its last byte is in.
  if (strict_) {
    Packet p;
    const auto r = course_.deserialize(&b, 1, &p);
    if (r != CourseReceiver::Result::Incomplete) {
      on_result(r, p);
      continue_steps();
    }
    return;
  }
  stream_.push_back(b);
  Packet p;
  CourseReceiver::Result r;
  while (resync_next(&p, &r)) {
    on_result(r, p);
    continue_steps();
  }
}

void Firmware::on_tx_done() {
  tx_busy_ = false;
  ++stats_.tx_bytes;
  emit_(std::vector<std::uint8_t>{tx_byte_});
  // The data-register-empty interrupt: the next byte from the ring.
  if (!tx_ring_.empty()) {
    const std::uint8_t b = tx_ring_.front();
    tx_ring_.pop_front();
    start_tx(b);
  }
  if (blocked_) continue_steps();
}

void Firmware::start_tx(std::uint8_t b) {
  tx_busy_ = true;
  tx_byte_ = b;
  tx_done_at_ = now_ + byte_us_;
}

void Firmware::flush_drop_report() {
  if (drop_burst_ == 0) return;
  event_("rx dropped " + std::to_string(drop_burst_) + " bytes (receive ring full, " +
         std::to_string(uart_.rx_ring - 1) + " held; " + std::to_string(stats_.rx_dropped) +
         " in all)");
  drop_burst_ = 0;
}

void Firmware::on_turn() {
  turn_start_ = now_;
  ++stats_.loop_turns;
  dispatched_this_turn_ = 0;
  flush_drop_report();
  if (garbage_pending_ > 0) {
    const int n = garbage_pending_;
    garbage_pending_ = 0;
    write(garbage(n), "fault garbage " + std::to_string(n) + " bytes");
  }
  // readSerial: everything the ring holds; deserialize only if it held anything.
  std::vector<std::uint8_t> chunk(rx_ring_.begin(), rx_ring_.end());
  rx_ring_.clear();
  if (!chunk.empty()) handle_chunk(chunk.data(), chunk.size());
  continue_steps();
}

void Firmware::handle_chunk(const std::uint8_t* p, std::size_t n) {
  Packet pkt;
  if (strict_) {
    const auto r = course_.deserialize(p, n, &pkt);
    if (r != CourseReceiver::Result::Incomplete) on_result(r, pkt);
    return;
  }
  stream_.insert(stream_.end(), p, p + n);
  CourseReceiver::Result r;
  if (resync_next(&pkt, &r)) on_result(r, pkt);  // one frame per call here too
}

bool Firmware::resync_next(Packet* out, CourseReceiver::Result* result) {
  // The recommended receiver (alex-protocol.md §4.4): search for the magic,
  // take 140 bytes, on a bad dataSize drop one byte and search again.
  while (true) {
    auto it =
        std::search(stream_.begin(), stream_.end(), std::begin(kMagicBytes), std::end(kMagicBytes));
    if (it == stream_.end()) {
      // Keep what could be the start of a magic split across reads.
      std::size_t keep = std::min<std::size_t>(3, stream_.size());
      while (keep > 0 && !std::equal(stream_.end() - static_cast<std::ptrdiff_t>(keep),
                                     stream_.end(), kMagicBytes))
        --keep;
      skipped_ += stream_.size() - keep;
      stream_.erase(stream_.begin(), stream_.end() - static_cast<std::ptrdiff_t>(keep));
      return false;
    }
    skipped_ += static_cast<std::size_t>(it - stream_.begin());
    stream_.erase(stream_.begin(), it);
    if (skipped_ > 0) {
      event_("rx skipped " + std::to_string(skipped_) + " bytes");
      skipped_ = 0;
    }
    if (stream_.size() > kMaxResyncBuffer)
      stream_.erase(stream_.begin(), stream_.end() - static_cast<std::ptrdiff_t>(kMaxResyncBuffer));
    if (stream_.size() < kFrameSize) return false;
    const auto check = alex::check_frame(stream_.data(), out);
    if (check == alex::FrameCheck::BadSize || check == alex::FrameCheck::BadMagic) {
      stream_.erase(stream_.begin());  // not a frame start after all
      ++skipped_;
      continue;
    }
    *result = check == alex::FrameCheck::Ok ? CourseReceiver::Result::Ok
                                            : CourseReceiver::Result::BadChecksum;
    stream_.erase(stream_.begin(), stream_.begin() + static_cast<std::ptrdiff_t>(kFrameSize));
    return true;
  }
}

void Firmware::on_result(CourseReceiver::Result r, const Packet& p) {
  switch (r) {
    case CourseReceiver::Result::Incomplete:
      return;
    case CourseReceiver::Result::BadMagic:
      // Only the counting receiver gets here: its window is out of step with
      // the host's frames.
      ++stats_.bad_magic;
      if (!desynced_) event_("desync");
      desynced_ = true;
      event_("rx BAD_MAGIC");
      reply(alex::make_error(Response::BadPacket));
      return;
    case CourseReceiver::Result::BadSize:
      ++stats_.bad_checksum;
      event_("rx BAD_SIZE (the course firmware would overrun its buffer here)");
      reply(alex::make_error(Response::BadChecksum));
      return;
    case CourseReceiver::Result::BadChecksum:
      ++stats_.bad_checksum;
      event_("rx BAD_CHECKSUM");
      reply(alex::make_error(Response::BadChecksum));
      return;
    case CourseReceiver::Result::Ok:
      break;
  }
  ++stats_.frames_ok;
  if (desynced_) {
    desynced_ = false;
    event_("realigned");
  }
  event_("rx " + alex::describe(p));
  dispatch(p);
}

void Firmware::write(std::vector<std::uint8_t> bytes, std::string label) {
  steps_.push_back(Step{std::move(bytes), std::move(label), nullptr});
}

void Firmware::act(std::function<void()> f) {
  steps_.push_back(Step{{}, {}, std::move(f)});
}

void Firmware::continue_steps() {
  while (!steps_.empty()) {
    Step& s = steps_.front();
    if (s.action) {
      auto f = std::move(s.action);
      steps_.pop_front();
      f();
      continue;
    }
    if (!step_started_) {
      step_started_ = true;
      if (!s.label.empty()) event_(s.label);
    }
    // Serial.write, byte by byte: straight into the idle transmitter, else
    // into the ring, else wait (the loop is stuck here).
    while (step_pos_ < s.bytes.size()) {
      if (!tx_busy_ && tx_ring_.empty())
        start_tx(s.bytes[step_pos_++]);
      else if (lenient_ || tx_ring_.size() + 1 < uart_.tx_ring)
        tx_ring_.push_back(s.bytes[step_pos_++]);
      else
        break;
    }
    if (step_pos_ < s.bytes.size()) {
      if (!blocked_) {
        blocked_ = true;
        blocked_since_ = now_;
      }
      return;
    }
    if (blocked_) {
      blocked_ = false;
      const std::int64_t stalled = now_ - blocked_since_;
      ++stats_.blocked_writes;
      stats_.last_block_us = stalled;
      stats_.max_block_us = std::max(stats_.max_block_us, stalled);
      event_("loop blocked " + ms_text(stalled) + " in Serial.write");
    }
    steps_.pop_front();
    step_pos_ = 0;
    step_started_ = false;
  }
  if (!lenient_) next_turn_at_ = std::max(turn_start_ + uart_.loop_us, now_);
}

// ---------------------------------------------------------------------------
// The command handler

void Firmware::dispatch(const Packet& p) {
  ++stats_.dispatched;
  ++dispatched_this_turn_;
  stats_.max_dispatch_per_turn = std::max(stats_.max_dispatch_per_turn, dispatched_this_turn_);
  const auto type = static_cast<PacketType>(p.type);
  if (hello_ == HelloMode::Require && !greeted_) {
    if (type == PacketType::Hello) {
      greeted_ = true;
      reply(alex::make_response(Response::Ok));
    } else {
      reply(alex::make_error(Response::BadResponse));
    }
    return;
  }
  if (type == PacketType::Hello) {
    // The skeleton's loop() ignores HELLO, also after waitForHello().
    if (hello_ == HelloMode::Answer) reply(alex::make_response(Response::Ok));
    return;
  }
  if (type != PacketType::Command) return;  // the firmware ignores other types
  const std::uint32_t amount = p.params[0], speed = p.params[1];
  const auto move = [this, amount, speed](Motion m) {
    reply(alex::make_response(Response::Ok));  // OK first, then move
    act([this, m, amount, speed] { start(m, amount, speed); });
  };
  switch (static_cast<Command>(p.command)) {
    case Command::Forward:
      move(Motion::Forward);
      break;
    case Command::Reverse:
      move(Motion::Reverse);
      break;
    case Command::TurnLeft:
      move(Motion::Left);
      break;
    case Command::TurnRight:
      move(Motion::Right);
      break;
    case Command::Stop:
      reply(alex::make_response(Response::Ok));
      act([this] { stop("STOP"); });
      if (message_after_stop_) reply(alex::make_message("STOPPED"));
      break;
    case Command::GetStats:
      reply(alex::make_status(counters_));
      break;
    case Command::ClearStats:
      clear(p.params[0]);
      reply(alex::make_response(Response::Ok));
      break;
    default:
      reply(alex::make_error(Response::BadCommand));
      break;
  }
}

void Firmware::reply(const Packet& p) {
  ++replies_;
  const bool drop =
      faults_.drop_next > 0 || (faults_.drop_every > 0 && replies_ % faults_.drop_every == 0);
  if (faults_.drop_next > 0) --faults_.drop_next;
  if (drop) {
    event_("fault drop " + alex::describe(p));
    return;
  }
  if (faults_.garbage_every > 0 && replies_ % faults_.garbage_every == 0)
    write(garbage(17), "fault garbage 17 bytes");
  auto frame = alex::encode_frame(p);
  const bool corrupt = faults_.corrupt_next > 0 ||
                       (faults_.corrupt_every > 0 && replies_ % faults_.corrupt_every == 0);
  if (faults_.corrupt_next > 0) --faults_.corrupt_next;
  std::string label = "tx " + alex::describe(p);
  if (corrupt) {
    frame[alex::kChecksumOffset] ^= 0x5A;
    label = "fault corrupt " + alex::describe(p);
  }
  write(std::vector<std::uint8_t>(frame.begin(), frame.end()), std::move(label));
}

std::vector<std::uint8_t> Firmware::garbage(int n) {
  std::vector<std::uint8_t> junk(static_cast<std::size_t>(std::max(0, n)));
  // Never 0xFF: garbage must not contain a frame start by accident.
  std::uniform_int_distribution<int> d(0, 0xFE);
  for (auto& b : junk) b = static_cast<std::uint8_t>(d(rng_));
  return junk;
}

void Firmware::send_garbage(int n) {
  if (n <= 0) return;
  if (lenient_) {
    write(garbage(n), "fault garbage " + std::to_string(n) + " bytes");
    continue_steps();
    return;
  }
  if (garbage_pending_ == 0) garbage_since_ = now_;
  garbage_pending_ += n;
}

// ---------------------------------------------------------------------------
// Motion

void Firmware::start(Motion m, std::uint32_t amount, std::uint32_t speed) {
  motion_tick(now_);
  const double pct = std::min<std::uint32_t>(speed, 100) / 100.0;
  const bool straight = m == Motion::Forward || m == Motion::Reverse;
  motion_ = m;
  last_tick_us_ = now_;
  done_ = 0;
  frac_ = 0;
  target_ = straight ? amount * cfg_.ticks_per_cm : amount * cfg_.ticks_per_deg;
  rate_ = straight ? cfg_.cm_per_s_at_full * pct * cfg_.ticks_per_cm / 1000.0
                   : cfg_.deg_per_s_at_full * pct * cfg_.ticks_per_deg / 1000.0;
}

void Firmware::stop(const char* why) {
  if (motion_ == Motion::None) return;
  motion_tick(now_);
  if (motion_ == Motion::None) return;  // reached its target just now
  motion_ = Motion::None;
  event_(std::string("motion stopped (") + why + ")");
}

void Firmware::clear(std::uint32_t which) {
  // The course handout has every value clear all counters.
  (void)which;
  counters_.fill(0);
  fwd_ticks_for_dist_ = rev_ticks_for_dist_ = 0;
}

std::uint32_t Firmware::cm_of(double ticks) const {
  // Truncated like the firmware's integer division; the epsilon keeps a
  // target of N cm (N * ticks_per_cm ticks) from reading N - 1.
  return static_cast<std::uint32_t>(ticks / cfg_.ticks_per_cm + 1e-6);
}

void Firmware::motion_tick(std::int64_t t_us) {
  if (motion_ == Motion::None) {
    last_tick_us_ = t_us;
    return;
  }
  const double dt_ms =
      static_cast<double>(std::max<std::int64_t>(0, t_us - last_tick_us_)) / 1000.0;
  last_tick_us_ = t_us;
  double step = rate_ * dt_ms + frac_;
  if (target_ > 0 && done_ + step >= target_) step = target_ - done_;
  const auto whole = static_cast<std::uint32_t>(std::floor(step));
  frac_ = step - whole;
  done_ += whole;
  switch (motion_) {
    case Motion::Forward:
      counters_[kLeftFwd] += whole;
      counters_[kRightFwd] += whole;
      fwd_ticks_for_dist_ += whole;
      counters_[kFwdDist] = cm_of(fwd_ticks_for_dist_);
      break;
    case Motion::Reverse:
      counters_[kLeftRev] += whole;
      counters_[kRightRev] += whole;
      rev_ticks_for_dist_ += whole;
      counters_[kRevDist] = cm_of(rev_ticks_for_dist_);
      break;
    case Motion::Left:
      counters_[kLeftRevTurns] += whole;
      counters_[kRightFwdTurns] += whole;
      break;
    case Motion::Right:
      counters_[kLeftFwdTurns] += whole;
      counters_[kRightRevTurns] += whole;
      break;
    case Motion::None:
      break;
  }
  if (target_ > 0 && done_ + 1e-9 >= target_) {
    motion_ = Motion::None;
    event_("motion stopped (target reached)");
  }
}

}  // namespace curvebus::alexsim
