#include "sim/sim.hpp"

#include <algorithm>
#include <cmath>

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
constexpr std::uint8_t kMagic[4] = {0xFF, 0xFE, 0xFD, 0xFC};
}  // namespace

Firmware::Firmware(MotionConfig motion, Emit emit, Event event)
    : cfg_(motion), emit_(std::move(emit)), event_(std::move(event)) {}

void Firmware::set_strict(bool on) {
  strict_ = on;
  desynced_ = false;
  window_.clear();
  stream_.clear();
}

void Firmware::set_hello(HelloMode m) {
  hello_ = m;
  greeted_ = false;
}

void Firmware::reset_receiver() {
  desynced_ = false;
  window_.clear();
  stream_.clear();
}

void Firmware::reboot() {
  stop("reboot");
  counters_.fill(0);
  fwd_ticks_for_dist_ = rev_ticks_for_dist_ = 0;
  greeted_ = false;
  reset_receiver();
  event_("reboot");
}

void Firmware::receive(const std::uint8_t* p, std::size_t n, std::int64_t now_ms) {
  tick(now_ms);
  if (strict_) {
    // Course receiver: frames by counting bytes, never resynchronises.
    for (std::size_t i = 0; i < n; ++i) {
      window_.push_back(p[i]);
      if (window_.size() == kFrameSize) {
        std::vector<std::uint8_t> frame;
        frame.swap(window_);
        on_frame(frame.data(), now_ms);
      }
    }
    return;
  }
  // Resynchronising receiver (alex-protocol.md §4.4): search for the magic.
  stream_.insert(stream_.end(), p, p + n);
  std::size_t skipped = 0;
  while (true) {
    auto it = std::search(stream_.begin(), stream_.end(), std::begin(kMagic), std::end(kMagic));
    if (it == stream_.end()) {
      // Keep what could be the start of a magic split across reads.
      std::size_t keep = std::min<std::size_t>(3, stream_.size());
      while (keep > 0 &&
             !std::equal(stream_.end() - static_cast<std::ptrdiff_t>(keep), stream_.end(), kMagic))
        --keep;
      skipped += stream_.size() - keep;
      stream_.erase(stream_.begin(), stream_.end() - static_cast<std::ptrdiff_t>(keep));
      break;
    }
    skipped += static_cast<std::size_t>(it - stream_.begin());
    stream_.erase(stream_.begin(), it);
    if (stream_.size() < kFrameSize) break;
    Packet pkt;
    const auto check = alex::check_frame(stream_.data(), &pkt);
    if (check == alex::FrameCheck::BadSize) {
      stream_.erase(stream_.begin());  // not a frame start after all
      ++skipped;
      continue;
    }
    if (skipped > 0) {
      event_("rx skipped " + std::to_string(skipped) + " bytes");
      skipped = 0;
    }
    on_frame(stream_.data(), now_ms);
    stream_.erase(stream_.begin(), stream_.begin() + static_cast<std::ptrdiff_t>(kFrameSize));
  }
  if (skipped > 0) event_("rx skipped " + std::to_string(skipped) + " bytes");
}

void Firmware::on_frame(const std::uint8_t* frame, std::int64_t now_ms) {
  Packet p;
  switch (alex::check_frame(frame, &p)) {
    case alex::FrameCheck::BadMagic:
      // Only the strict (counting) receiver gets here: its window is out of
      // step with the host's frames.
      if (!desynced_) event_("desync");
      desynced_ = true;
      event_("rx BAD_MAGIC");
      reply(alex::make_error(Response::BadPacket));
      return;
    case alex::FrameCheck::BadChecksum:
    case alex::FrameCheck::BadSize:
      event_("rx BAD_CHECKSUM");
      reply(alex::make_error(Response::BadChecksum));
      return;
    case alex::FrameCheck::Ok:
      break;
  }
  if (desynced_) {
    desynced_ = false;
    event_("realigned");
  }
  event_("rx " + alex::describe(p));
  dispatch(p, now_ms);
}

void Firmware::dispatch(const Packet& p, std::int64_t now_ms) {
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
  switch (static_cast<Command>(p.command)) {
    case Command::Forward:
      reply(alex::make_response(Response::Ok));  // OK first, then move
      start(Motion::Forward, p.params[0], p.params[1], now_ms);
      break;
    case Command::Reverse:
      reply(alex::make_response(Response::Ok));
      start(Motion::Reverse, p.params[0], p.params[1], now_ms);
      break;
    case Command::TurnLeft:
      reply(alex::make_response(Response::Ok));
      start(Motion::Left, p.params[0], p.params[1], now_ms);
      break;
    case Command::TurnRight:
      reply(alex::make_response(Response::Ok));
      start(Motion::Right, p.params[0], p.params[1], now_ms);
      break;
    case Command::Stop:
      reply(alex::make_response(Response::Ok));
      stop("STOP");
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
  if (faults_.garbage_every > 0 && replies_ % faults_.garbage_every == 0) send_garbage(17);
  auto frame = alex::encode_frame(p);
  const bool corrupt = faults_.corrupt_next > 0 ||
                       (faults_.corrupt_every > 0 && replies_ % faults_.corrupt_every == 0);
  if (faults_.corrupt_next > 0) --faults_.corrupt_next;
  if (corrupt) {
    frame[alex::kChecksumOffset] ^= 0x5A;
    event_("fault corrupt " + alex::describe(p));
  } else {
    event_("tx " + alex::describe(p));
  }
  emit_(std::vector<std::uint8_t>(frame.begin(), frame.end()));
}

void Firmware::send_garbage(int n) {
  std::vector<std::uint8_t> junk(static_cast<std::size_t>(std::max(0, n)));
  // Never 0xFF: garbage must not contain a frame start by accident.
  std::uniform_int_distribution<int> d(0, 0xFE);
  for (auto& b : junk) b = static_cast<std::uint8_t>(d(rng_));
  event_("fault garbage " + std::to_string(n) + " bytes");
  emit_(junk);
}

void Firmware::start(Motion m, std::uint32_t amount, std::uint32_t speed, std::int64_t now_ms) {
  tick(now_ms);
  const double pct = std::min<std::uint32_t>(speed, 100) / 100.0;
  const bool straight = m == Motion::Forward || m == Motion::Reverse;
  motion_ = m;
  last_tick_ms_ = now_ms;
  done_ = 0;
  frac_ = 0;
  target_ = straight ? amount * cfg_.ticks_per_cm : amount * cfg_.ticks_per_deg;
  rate_ = straight ? cfg_.cm_per_s_at_full * pct * cfg_.ticks_per_cm / 1000.0
                   : cfg_.deg_per_s_at_full * pct * cfg_.ticks_per_deg / 1000.0;
}

void Firmware::stop(const char* why) {
  if (motion_ == Motion::None) return;
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

void Firmware::tick(std::int64_t now_ms) {
  if (motion_ == Motion::None) {
    last_tick_ms_ = now_ms;
    return;
  }
  const double dt = static_cast<double>(std::max<std::int64_t>(0, now_ms - last_tick_ms_));
  last_tick_ms_ = now_ms;
  double step = rate_ * dt + frac_;
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
  if (target_ > 0 && done_ + 1e-9 >= target_) stop("target reached");
}

}  // namespace curvebus::alexsim
