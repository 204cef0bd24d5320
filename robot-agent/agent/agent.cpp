#include "agent.hpp"

#include <google/protobuf/util/json_util.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "curvebus.pb.h"
#include "curvebus/codec.hpp"

namespace curvebus::agent {

namespace {

alex::Packet packet_for(const rv1::Command& cmd) {
  using alex::Command;
  switch (cmd.action_case()) {
    case rv1::Command::kForward:
      return alex::make_command(Command::Forward, cmd.forward().distance_cm(),
                                cmd.forward().speed_pct());
    case rv1::Command::kBackward:
      return alex::make_command(Command::Reverse, cmd.backward().distance_cm(),
                                cmd.backward().speed_pct());
    case rv1::Command::kLeft:
      return alex::make_command(Command::TurnLeft, cmd.left().angle_deg(), cmd.left().speed_pct());
    case rv1::Command::kRight:
      return alex::make_command(Command::TurnRight, cmd.right().angle_deg(),
                                cmd.right().speed_pct());
    case rv1::Command::kGetStats:
      return alex::make_command(Command::GetStats);
    case rv1::Command::kClearStats:
      return alex::make_command(Command::ClearStats, 0);
    default:
      return alex::make_command(Command::Stop);
  }
}

rv1::ResultStatus status_for(Outcome o) {
  switch (o) {
    case Outcome::Ok:
    case Outcome::Status:
      return rv1::RESULT_OK;
    case Outcome::BadPacket:
    case Outcome::BadResponse:
      return rv1::RESULT_ARDUINO_BAD_PACKET;
    case Outcome::BadChecksum:
      return rv1::RESULT_ARDUINO_BAD_CHECKSUM;
    case Outcome::BadCommand:
      return rv1::RESULT_ARDUINO_BAD_COMMAND;
    case Outcome::Timeout:
      return rv1::RESULT_TIMEOUT;
    case Outcome::SerialDown:
      return rv1::RESULT_SERIAL_DOWN;
    case Outcome::Superseded:
      return rv1::RESULT_SUPERSEDED;
  }
  return rv1::RESULT_UNSPECIFIED;
}

rv1::Telemetry telemetry_from(const alex::Packet& p) {
  rv1::Telemetry t;
  t.set_left_forward_ticks(p.params[0]);
  t.set_right_forward_ticks(p.params[1]);
  t.set_left_reverse_ticks(p.params[2]);
  t.set_right_reverse_ticks(p.params[3]);
  t.set_left_forward_ticks_turns(p.params[4]);
  t.set_right_forward_ticks_turns(p.params[5]);
  t.set_left_reverse_ticks_turns(p.params[6]);
  t.set_right_reverse_ticks_turns(p.params[7]);
  t.set_forward_dist_cm(p.params[8]);
  t.set_reverse_dist_cm(p.params[9]);
  t.set_timestamp_us(wall_clock_us());
  return t;
}

std::uint64_t tick_sum(const alex::Packet& p) {
  std::uint64_t sum = 0;
  for (int i = 0; i < 8; ++i) sum += p.params[static_cast<std::size_t>(i)];
  return sum;
}

}  // namespace

Agent::Agent(AgentConfig config)
    : config_(std::move(config)), link_(config_.link), policy_(config_.policy) {
  const std::string base = "robot/" + config_.robot_id + "/";
  topic_cmd_ = base + "cmd";
  topic_ack_ = base + "ack";
  topic_telemetry_ = base + "telemetry";
  topic_status_ = base + "status";
  topic_clear_ = base + "cmd/clear-estop";
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  latch_ = std::make_unique<EstopLatch>(config_.estop_file, [this] { wake(); });
  link_.on_stop_confirmed([this](int attempts) {
    // Disarm only if no motion was sent after the STOP was decided.
    if (motion_gen_ == stop_gen_) {
      motion_since_stop_ = false;
      moving_ = false;
    }
    spdlog::info("STOP confirmed by the Arduino after {} frame(s)", attempts);
    publish_status(steady_ms(), true);
  });
  link_.on_state_change([this](LinkState from, LinkState to, const std::string& why) {
    spdlog::info("serial {} -> {}: {}", link_state_name(from), link_state_name(to), why);
    if (to == LinkState::Down) last_error_ = "serial: " + why;
    publish_status(steady_ms(), true);
  });
}

Agent::~Agent() {
  latch_.reset();  // its worker wakes the loop through wake_fd_
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Agent::stop() {
  stop_ = true;
  wake();
}

void Agent::on_message(const Message& m) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.push_back(Incoming{m.topic, m.payload, m.publisher});
  }
  std::uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

void Agent::publish_result(rv1::CommandResult result) {
  result.set_completed_us(wall_clock_us());
  if (result.status() != rv1::RESULT_OK) ++counters_.rejected;
  spdlog::info("ack id={} action={} status={} attempts={} {}", result.id(), result.action(),
               rv1::ResultStatus_Name(result.status()), result.attempts(), result.detail());
  Status s = client_->publish(topic_ack_, result.SerializeAsString());
  if (!s) spdlog::warn("cannot publish ack {}: {}", result.id(), s.message());
}

void Agent::publish_status(std::int64_t now_ms, bool force) {
  if (!client_) return;
  rv1::RobotStatus st;
  st.set_serial_up(link_.ready());
  st.set_broker_up(broker_up_);
  st.set_moving(moving_);
  st.set_last_error(last_error_);
  st.set_estop_latched(policy_.estop_latched());
  st.set_estop_reason(policy_.estop_reason());
  st.set_lease_holder(policy_.lease_holder());
  st.set_device(config_.link.device);
  const auto& ds = link_.decoder_stats();
  st.set_frames_ok(ds.frames_ok);
  st.set_bad_checksum(ds.bad_checksum);
  st.set_garbage_bytes(ds.garbage_bytes);
  st.set_timeouts(link_.counters().timeouts);
  st.set_realignments(link_.counters().realignments);
  st.set_deadman_stops(counters_.deadman_stops);
  st.set_state(link_state_name(link_.state()));
  st.set_stop_pending(link_.stop_pending());
  st.set_stops_resent(link_.counters().stop_resends);
  st.set_superseded(link_.counters().superseded);
  st.set_dropped_estop_clears(counters_.estop_clears_refused);
  // Publish on a change of what a person watches, or periodically.
  std::string key = st.SerializeAsString();
  rv1::RobotStatus cmp = st;
  cmp.clear_frames_ok();
  cmp.clear_garbage_bytes();
  cmp.clear_bad_checksum();
  cmp.clear_timeouts();
  std::string fingerprint = cmp.SerializeAsString();
  if (!force && fingerprint == last_status_ && now_ms < next_status_ms_) return;
  last_status_ = fingerprint;
  next_status_ms_ = now_ms + config_.status_ms;
  st.set_timestamp_us(wall_clock_us());
  PublishOptions opts;
  opts.retain = true;
  client_->publish(topic_status_, st.SerializeAsString(), opts);
}

void Agent::publish_telemetry(const alex::Packet& p) {
  rv1::Telemetry t = telemetry_from(p);
  t.set_sample(++telemetry_sample_);
  ++counters_.telemetry;
  client_->publish(topic_telemetry_, t.SerializeAsString());
}

void Agent::stop_motors(AlexLink::Done done) {
  stop_gen_ = motion_gen_;
  link_.request_stop(std::move(done));
}

void Agent::after_latch(std::uint64_t gen, std::function<void()> then) {
  latch_waits_.push_back(LatchWait{gen, std::move(then)});
  flush_latch_waits();
}

void Agent::flush_latch_waits() {
  if (latch_waits_.empty()) return;
  const std::uint64_t done = latch_->durable();
  if (latch_waits_.front().gen > done) return;
  const std::string err = latch_->error();
  if (!err.empty() && done != latch_error_gen_) {
    latch_error_gen_ = done;
    last_error_ = "e-stop latch file: " + err;
    spdlog::error("{}", last_error_);
  }
  while (!latch_waits_.empty() && latch_waits_.front().gen <= done) {
    auto then = std::move(latch_waits_.front().then);
    latch_waits_.pop_front();
    then();
  }
}

void Agent::wake() {
  if (wake_fd_ < 0) return;
  std::uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

void Agent::deadman_stop(const std::string& why, std::int64_t now_ms) {
  ++counters_.deadman_stops;
  spdlog::warn("dead-man stop: {}", why);
  last_error_ = "dead-man stop: " + why;
  stop_motors([this, why](const Reply& r) {
    spdlog::info("dead-man STOP: {}", outcome_name(r.outcome));
    rv1::CommandResult res;
    res.set_id("deadman");
    res.set_action("stop");
    res.set_status(status_for(r.outcome));
    res.set_detail("dead-man stop: " + why);
    res.set_attempts(static_cast<std::uint32_t>(r.attempts));
    res.set_latency_us(static_cast<std::uint32_t>(r.latency_us));
    if (client_) publish_result(res);
  });
  publish_status(now_ms, true);
}

void Agent::send_to_arduino(const rv1::Command& cmd, const std::string& sender,
                            std::int64_t now_ms) {
  const Kind kind = kind_of(cmd);
  const std::string id = cmd.id();
  const std::string action = action_name(cmd);
  const std::int64_t received_us = wall_clock_us();
  auto finish = [this, id, action, sender, received_us](const Reply& r) {
    rv1::CommandResult res;
    res.set_id(id);
    res.set_action(action);
    res.set_controller(sender);
    res.set_status(status_for(r.outcome));
    res.set_attempts(static_cast<std::uint32_t>(r.attempts));
    res.set_latency_us(static_cast<std::uint32_t>(wall_clock_us() - received_us));
    if (r.outcome == Outcome::Status) {
      *res.mutable_stats() = telemetry_from(r.packet);
      publish_telemetry(r.packet);
    }
    if (r.outcome == Outcome::Superseded) {
      res.set_detail("a STOP came before this motion was written; not run");
    } else if (r.outcome != Outcome::Ok && r.outcome != Outcome::Status) {
      res.set_detail(std::string("arduino: ") + outcome_name(r.outcome));
      last_error_ = res.detail();
    }
    publish_result(res);
  };
  switch (kind) {
    case Kind::Motion:
      ++motion_gen_;
      motion_since_stop_ = true;
      moving_ = true;
      motion_started_ms_ = now_ms;
      link_.submit(packet_for(cmd), finish);
      break;
    case Kind::Stop:
      stop_motors(finish);
      break;
    case Kind::EmergencyStop: {
      // The latch is written on its own thread (an fsync can take seconds)
      // while the STOP goes to the link at once; the ack waits for both the
      // Arduino's answer and the latch on disk.
      const std::uint64_t gen = latch_->request(true, policy_.estop_reason());
      stop_motors(
          [this, finish, gen](const Reply& r) { after_latch(gen, [finish, r] { finish(r); }); });
      break;
    }
    case Kind::ClearEmergencyStop: {
      const std::uint64_t gen = latch_->request(false, "");
      after_latch(gen, [finish] { finish(Reply{Outcome::Ok, {}, 0, 0}); });
      break;
    }
    case Kind::Release:
      if (motion_since_stop_)
        stop_motors(finish);
      else
        finish(Reply{Outcome::Ok, {}, 0, 0});
      break;
    case Kind::Stats:
    case Kind::ClearStats:
      link_.submit(packet_for(cmd), finish);
      break;
    default:
      finish(Reply{Outcome::Ok, {}, 0, 0});
      break;  // keepalive
  }
  publish_status(now_ms, false);
}

void Agent::refuse(const rv1::Command& cmd, const std::string& sender, rv1::ResultStatus status,
                   const std::string& detail) {
  rv1::CommandResult res;
  res.set_id(cmd.id());
  res.set_action(action_name(cmd));
  res.set_controller(sender);
  res.set_status(status);
  res.set_detail(detail);
  publish_result(res);
}

void Agent::handle_command(const Incoming& in, std::int64_t now_ms) {
  ++counters_.commands;
  rv1::Command cmd;
  if (!cmd.ParseFromString(in.payload)) {
    ++counters_.undecodable;
    rv1::CommandResult res;
    res.set_status(rv1::RESULT_REJECTED_INVALID);
    res.set_controller(in.publisher);
    res.set_detail("payload is not a binary curvebus.robot.v1.Command (use `curvebus pub --json`)");
    publish_result(res);
    return;
  }
  const Kind kind = kind_of(cmd);
  // Clearing an e-stop is a right of its own: the broker lets only names with
  // publish rights on robot/<id>/cmd/clear-estop publish there.
  if (kind == Kind::ClearEmergencyStop && in.topic != topic_clear_) {
    ++counters_.estop_clears_refused;
    spdlog::warn("refused clear_estop from {} on {}: clearing needs publish rights on {}",
                 in.publisher, in.topic, topic_clear_);
    refuse(cmd, in.publisher, rv1::RESULT_REJECTED_NOT_ALLOWED,
           "clearing an emergency stop needs the right to publish on " + topic_clear_);
    return;
  }
  if (kind != Kind::ClearEmergencyStop && in.topic == topic_clear_) {
    refuse(cmd, in.publisher, rv1::RESULT_REJECTED_INVALID,
           topic_clear_ + " takes clear_estop only");
    return;
  }
  Decision d = policy_.check(cmd, in.publisher, wall_clock_us(), now_ms);
  if (!d.ok()) {
    refuse(cmd, in.publisher, d.status, d.detail);
    return;
  }
  // STOP, E-STOP and release are taken in every link state: the link writes
  // the STOP as soon as it can carry a frame (through re-alignment and reopen).
  const bool always = kind == Kind::Stop || kind == Kind::EmergencyStop || kind == Kind::Release ||
                      kind == Kind::KeepAlive || kind == Kind::ClearEmergencyStop;
  if (!link_.ready() && !always) {
    refuse(cmd, in.publisher, rv1::RESULT_SERIAL_DOWN,
           std::string("serial link is ") + link_state_name(link_.state()));
    return;
  }
  send_to_arduino(cmd, in.publisher, now_ms);
}

void Agent::handle_presence(const Incoming& in, std::int64_t now_ms) {
  v1::Presence p;
  if (!google::protobuf::util::JsonStringToMessage(in.payload, &p).ok()) return;
  if (p.state() != "offline" || p.sessions() > 0) return;
  if (policy_.controller_offline(p.name())) {
    spdlog::info("lease holder {} went offline ({})", p.name(), p.reason());
    if (motion_since_stop_)
      deadman_stop("controller " + p.name() + " went offline (" + p.reason() + ")", now_ms);
    publish_status(now_ms, true);
  }
}

void Agent::poll_stats(std::int64_t now_ms) {
  // Polls yield: only on an idle link, so a poll never waits in front of a
  // command, and a STOP waits for at most the one exchange in flight.
  if (config_.telemetry_ms <= 0 || stats_outstanding_ || !link_.ready() || !link_.idle() ||
      now_ms < next_stats_ms_)
    return;
  next_stats_ms_ = now_ms + config_.telemetry_ms;
  stats_outstanding_ = true;
  link_.submit(alex::make_command(alex::Command::GetStats), [this](const Reply& r) {
    stats_outstanding_ = false;
    if (r.outcome != Outcome::Status) return;
    const std::uint64_t ticks = tick_sum(r.packet);
    const std::int64_t t = steady_ms();
    const bool was_moving = moving_;
    moving_ = ticks != last_ticks_ ||
              (motion_since_stop_ && t - motion_started_ms_ < 2 * config_.telemetry_ms);
    last_ticks_ = ticks;
    publish_telemetry(r.packet);
    if (was_moving != moving_) publish_status(t, true);
  });
}

void Agent::check_broker(std::int64_t now_ms) {
  const bool up = client_->state() == ConnectionState::Connected &&
                  now_ms - client_->last_heard_ms() <= config_.policy.deadman_ms;
  if (up == broker_up_) return;
  broker_up_ = up;
  if (!up) {
    spdlog::warn("broker link lost");
    if (motion_since_stop_) deadman_stop("broker link silent", now_ms);
  } else {
    spdlog::info("broker link up");
    publish_status(now_ms, true);
  }
}

int Agent::run() {
  config_.client.role = v1::ROLE_AGENT;
  config_.client.provides = {topic_ack_, topic_telemetry_, topic_status_};
  // The broker's alive signal must be faster than the dead-man time so that a
  // silent broker link is told from a quiet one.
  config_.client.heartbeat =
      std::chrono::milliseconds(std::max(50, static_cast<int>(config_.policy.deadman_ms / 4)));
  client_ = std::make_unique<Client>(config_.client);
  Status s = client_->connect(std::chrono::milliseconds(10000));
  if (!s) {
    spdlog::error("cannot connect to the broker: {}", s.message());
    return 2;
  }
  s = client_->subscribe({topic_cmd_}, [this](const Message& m) { on_message(m); });
  if (!s) {
    spdlog::error("cannot subscribe {}: {}", topic_cmd_, s.message());
    return 2;
  }
  Status cs = client_->subscribe({topic_clear_}, [this](const Message& m) { on_message(m); });
  if (!cs)
    spdlog::error(
        "cannot subscribe {} ({}): an emergency stop cannot be cleared over the bus; allow the "
        "agent to subscribe to it in the broker's ACL",
        topic_clear_, cs.message());
  Status ps = client_->subscribe({"$SYS/presence/+"}, [this](const Message& m) { on_message(m); });
  if (!ps)
    spdlog::warn("no presence events ({}): controllers' loss is noticed by silence only",
                 ps.message());
  // An e-stop latched before a restart (or a crash) is still latched.
  if (!config_.estop_file.empty()) {
    std::ifstream latch(config_.estop_file);
    if (latch) {
      std::string reason;
      std::getline(latch, reason);
      policy_.restore_estop(reason.empty() ? "emergency stop (kept across a restart)" : reason);
      spdlog::warn("emergency stop still latched from before the restart: {}", reason);
      stop_motors(nullptr);
    }
  }
  spdlog::info("agent for robot '{}' on {} at {} baud; commands on {}", config_.robot_id,
               config_.link.device, config_.link.baud, topic_cmd_);
  broker_up_ = true;
  publish_status(steady_ms(), true);

  while (!stop_) {
    pollfd fds[2];
    int n = 0;
    fds[n++] = pollfd{wake_fd_, POLLIN, 0};
    if (link_.fd() >= 0) fds[n++] = pollfd{link_.fd(), POLLIN, 0};
    // Short ticks while the Arduino link has work (reply timeouts, re-align
    // pacing); otherwise 20 ms keeps dead-man checks prompt at little cost.
    ::poll(fds, static_cast<nfds_t>(n), link_.idle() && link_.ready() ? 20 : 5);
    std::int64_t now = steady_ms();
    if (fds[0].revents & POLLIN) {
      std::uint64_t v;
      ssize_t r = ::read(wake_fd_, &v, sizeof v);
      (void)r;
    }
    if (n > 1 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) link_.on_readable(now);
    std::deque<Incoming> batch;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batch.swap(inbox_);
    }
    for (const auto& in : batch) {
      if (in.topic == topic_cmd_ || in.topic == topic_clear_)
        handle_command(in, now);
      else
        handle_presence(in, now);
    }
    link_.tick(now);
    flush_latch_waits();
    if (policy_.expire_lease(now) && motion_since_stop_)
      deadman_stop(
          "controller silent for more than " + std::to_string(config_.policy.deadman_ms) + " ms",
          now);
    check_broker(now);
    poll_stats(now);
    publish_status(now, false);
  }

  // Shutdown: the motors stop before the agent goes — a STOP like any other
  // (after the exchange in flight), waited for up to a few exchanges.
  spdlog::info("shutting down: sending STOP");
  stop_motors(nullptr);
  const std::int64_t give_up = steady_ms() + 3 * link_.reply_timeout_ms() + 500;
  while (link_.stop_pending() && link_.state() != LinkState::Down && steady_ms() < give_up) {
    pollfd fd{link_.fd(), POLLIN, 0};
    ::poll(&fd, fd.fd >= 0 ? 1 : 0, 5);
    const std::int64_t now = steady_ms();
    if (fd.revents & (POLLIN | POLLHUP | POLLERR)) link_.on_readable(now);
    link_.tick(now);
  }
  if (link_.stop_pending()) spdlog::warn("shutting down with the STOP not confirmed");
  latch_->wait_idle();
  flush_latch_waits();
  broker_up_ = false;
  last_error_ = "agent stopped";
  publish_status(steady_ms(), true);
  client_->close();
  return 0;
}

}  // namespace curvebus::agent
