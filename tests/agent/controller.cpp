#include "controller.hpp"

#include <unistd.h>

#include <atomic>

#include "curvebus/codec.hpp"

namespace curvebus::test {

std::int64_t wall_ms() {
  return wall_clock_us() / 1000;
}

std::uint64_t ticks(const rv1::Telemetry& t) {
  return std::uint64_t{t.left_forward_ticks()} + t.right_forward_ticks() + t.left_reverse_ticks() +
         t.right_reverse_ticks() + t.left_forward_ticks_turns() + t.right_forward_ticks_turns() +
         t.left_reverse_ticks_turns() + t.right_reverse_ticks_turns();
}

// ------------------------------------------------------------------ Controller

namespace {
// Command ids must be unique per sender name for the agent's whole run, also
// across Controller objects of the same name.
int next_instance() {
  static std::atomic<int> n{0};
  return ++n;
}
}  // namespace

ClientOptions client_options(const BrokerHarness& broker, const std::string& name,
                             std::chrono::milliseconds heartbeat) {
  ClientOptions o;
  o.endpoint = broker.endpoint();
  o.server_public_key = broker.server_public_key();
  o.public_key = broker.keys_of(name).public_key;
  o.secret_key = broker.keys_of(name).secret_key;
  o.heartbeat = heartbeat;
  o.reconnect_min = 50ms;
  o.reconnect_max = 500ms;
  return o;
}

Controller::Controller(const BrokerHarness& broker, const std::string& name,
                       const std::string& robot)
    : robot_(robot),
      prefix_(name + "-" + std::to_string(::getpid()) + "-" + std::to_string(next_instance()) +
              "-") {
  client_ = std::make_unique<Client>(client_options(broker, name));
  if (!client_->connect(5000ms)) return;
  const std::string base = "robot/" + robot_ + "/";
  connected_ = client_
                   ->subscribe(
                       {base + "ack", base + "telemetry", base + "status"},
                       [this](const Message& m) { on_message(m); }, true)
                   .ok();
}

Controller::~Controller() {
  stop_keepalive();
  client_->close();
}

void Controller::on_message(const Message& m) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string base = "robot/" + robot_ + "/";
  if (m.topic == base + "ack") {
    AckSeen a;
    a.received_wall_ms = wall_ms();
    if (a.result.ParseFromString(m.payload)) acks_.push_back(a);
  } else if (m.topic == base + "telemetry") {
    rv1::Telemetry t;
    if (t.ParseFromString(m.payload)) telemetry_.push_back(t);
  } else if (m.topic == base + "status") {
    rv1::RobotStatus s;
    if (s.ParseFromString(m.payload)) status_.push_back(s);
  }
  cv_.notify_all();
}

rv1::Command Controller::command() const {
  rv1::Command c;
  std::lock_guard<std::mutex> lock(mutex_);
  c.set_id(prefix_ + std::to_string(++next_id_));
  c.set_issued_us(wall_clock_us());
  return c;
}

std::string Controller::send(rv1::Command cmd, Status* status, const std::string& subtopic) {
  PublishOptions o;
  o.wait_ack = true;
  Status s = client_->publish("robot/" + robot_ + "/" + subtopic, cmd.SerializeAsString(), o);
  if (status) *status = s;
  return cmd.id();
}

std::optional<AckSeen> Controller::wait_ack_seen(const std::string& id,
                                                 std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<AckSeen> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& a : acks_)
      if (a.result.id() == id) {
        found = a;
        return true;
      }
    return false;
  });
  return found;
}

std::optional<rv1::CommandResult> Controller::wait_ack(const std::string& id,
                                                       std::chrono::milliseconds timeout) {
  auto seen = wait_ack_seen(id, timeout);
  if (!seen) return std::nullopt;
  return seen->result;
}

std::optional<rv1::CommandResult> Controller::call(rv1::Command cmd,
                                                   std::chrono::milliseconds timeout,
                                                   const std::string& subtopic) {
  Status s;
  const std::string id = send(std::move(cmd), &s, subtopic);
  if (!s) return std::nullopt;
  return wait_ack(id, timeout);
}

std::optional<rv1::Telemetry> Controller::latest_telemetry() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (telemetry_.empty()) return std::nullopt;
  return telemetry_.back();
}

std::optional<rv1::Telemetry> Controller::wait_telemetry(
    const std::function<bool(const rv1::Telemetry&)>& pred, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::size_t from = telemetry_.size();
  std::optional<rv1::Telemetry> found;
  cv_.wait_for(lock, timeout, [&] {
    for (std::size_t i = from; i < telemetry_.size(); ++i)
      if (pred(telemetry_[i])) {
        found = telemetry_[i];
        return true;
      }
    return false;
  });
  return found;
}

std::optional<rv1::RobotStatus> Controller::wait_status(
    const std::function<bool(const rv1::RobotStatus&)>& pred, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<rv1::RobotStatus> found;
  std::size_t from = 0;
  cv_.wait_for(lock, timeout, [&] {
    for (std::size_t i = from; i < status_.size(); ++i)
      if (pred(status_[i])) {
        found = status_[i];
        return true;
      }
    // Only the newest status counts next time round: a later one supersedes.
    from = status_.empty() ? 0 : status_.size() - 1;
    return false;
  });
  return found;
}

std::vector<AckSeen> Controller::acks_seen() {
  std::lock_guard<std::mutex> lock(mutex_);
  return acks_;
}

std::vector<rv1::CommandResult> Controller::acks() {
  std::vector<rv1::CommandResult> out;
  for (auto& a : acks_seen()) out.push_back(std::move(a.result));
  return out;
}

void Controller::start_keepalive(std::chrono::milliseconds period) {
  stop_keepalive();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    keepalive_run_ = true;
  }
  keepalive_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (keepalive_run_) {
      lock.unlock();
      rv1::Command c = command();
      c.mutable_keepalive();
      client_->publish("robot/" + robot_ + "/cmd", c.SerializeAsString());
      lock.lock();
      cv_.wait_for(lock, period, [this] { return !keepalive_run_; });
    }
  });
}

void Controller::stop_keepalive() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    keepalive_run_ = false;
  }
  cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
}

}  // namespace curvebus::test
