#include "robot_env.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <sstream>

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

Controller::Controller(const BrokerHarness& broker, const std::string& name,
                       const std::string& robot)
    : robot_(robot),
      prefix_(name + "-" + std::to_string(::getpid()) + "-" + std::to_string(next_instance()) +
              "-") {
  ClientOptions o;
  o.endpoint = broker.endpoint();
  o.server_public_key = broker.server_public_key();
  o.public_key = broker.keys_of(name).public_key;
  o.secret_key = broker.keys_of(name).secret_key;
  o.heartbeat = 100ms;
  o.reconnect_min = 50ms;
  o.reconnect_max = 500ms;
  client_ = std::make_unique<Client>(o);
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
    rv1::CommandResult r;
    if (r.ParseFromString(m.payload)) acks_.push_back(r);
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

std::optional<rv1::CommandResult> Controller::wait_ack(const std::string& id,
                                                       std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<rv1::CommandResult> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& a : acks_)
      if (a.id() == id) {
        found = a;
        return true;
      }
    return false;
  });
  return found;
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

std::vector<rv1::CommandResult> Controller::acks() {
  std::lock_guard<std::mutex> lock(mutex_);
  return acks_;
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

// -------------------------------------------------------------------- RobotEnv

RobotEnv::RobotEnv(RobotEnvOptions options)
    : broker(CURVEBUS_BROKER_BIN, dir.path()), options_(std::move(options)) {
  broker.add_client({"alex",
                     {"robot/alex/ack", "robot/alex/telemetry", "robot/alex/status"},
                     {"robot/alex/cmd", "robot/alex/cmd/clear-estop", "$SYS/presence/+"},
                     false,
                     "agent"});
  // op1 may clear an e-stop (publish on robot/alex/cmd/clear-estop); op2 may not.
  broker.add_client({"op1",
                     {"robot/alex/cmd", "robot/alex/cmd/clear-estop"},
                     {"robot/alex/#", "$SYS/presence/#"}});
  broker.add_client({"op2", {"robot/alex/cmd"}, {"robot/alex/#"}});
  broker.add_client({"viewer", {}, {"robot/alex/#"}});
  if (!broker.start()) return;

  tty = dir / "alex-tty";
  control = dir / "alex-control";
  std::vector<std::string> sim_argv{ALEX_SIM_BIN, "--link", tty,     "--control",
                                    control,      "--baud", "115200"};
  sim_argv.insert(sim_argv.end(), options_.sim_args.begin(), options_.sim_args.end());
  sim = std::make_unique<Process>(sim_argv, dir / "alex-sim");
  if (!wait_until(
          [&] { return ::access(tty.c_str(), F_OK) == 0 && ::access(control.c_str(), F_OK) == 0; },
          5000ms))
    return;
  if (options_.start_agent && !start_agent()) return;
  ok_ = true;
}

RobotEnv::~RobotEnv() {
  if (agent) agent->stop();
  if (sim) sim->stop();
}

bool RobotEnv::start_agent(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{CURVEBUS_AGENT_BIN,
                                "--serial",
                                tty,
                                "--robot",
                                "alex",
                                "--baud",
                                "115200",
                                "--settle-ms",
                                "0",
                                "--telemetry-ms",
                                "100",
                                "--endpoint",
                                broker.endpoint(),
                                "--server-key",
                                broker.public_file("broker"),
                                "--key",
                                broker.secret_file("alex"),
                                "--estop-file",
                                dir / "estop-alex",
                                "--log-level",
                                "debug"};
  argv.insert(argv.end(), options_.agent_args.begin(), options_.agent_args.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  agent = std::make_unique<Process>(argv, dir / "agent");
  return wait_until(
      [&] {
        // Registered with the broker, and the serial link through its HELLO.
        const std::string log = agent->out() + agent->err();
        return log.find("agent for robot") != std::string::npos &&
               log.find("-> ready") != std::string::npos;
      },
      10000ms);
}

bool RobotEnv::sim_control(const std::string& line) {
  const int fd = ::open(control.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  const std::string l = line + "\n";
  const bool ok = ::write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size());
  ::close(fd);
  return ok;
}

std::vector<SimEvent> RobotEnv::sim_events() {
  std::vector<SimEvent> out;
  std::istringstream in(sim->out());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("event ", 0) != 0) continue;
    SimEvent e;
    // "event wall_ms=N mono_ms=M <text>": the text follows the last key=value timestamp.
    std::istringstream words(line.substr(6));
    std::string w, rest;
    while (words >> w) {
      if (w.rfind("wall_ms=", 0) == 0) {
        e.wall_ms = std::stoll(w.substr(8));
      } else if (w.find("_ms=") != std::string::npos && rest.empty()) {
        continue;
      } else {
        rest += (rest.empty() ? "" : " ") + w;
      }
    }
    e.text = rest;
    out.push_back(e);
  }
  return out;
}

std::optional<std::int64_t> RobotEnv::wait_sim_event(const std::string& needle,
                                                     std::int64_t since_wall_ms,
                                                     std::chrono::milliseconds timeout) {
  std::optional<std::int64_t> found;
  wait_until(
      [&] {
        for (const auto& e : sim_events())
          if (e.wall_ms >= since_wall_ms && e.text.find(needle) != std::string::npos) {
            found = e.wall_ms;
            return true;
          }
        return false;
      },
      timeout);
  return found;
}

RunResult RobotEnv::cli(const std::string& name, std::vector<std::string> args,
                        const std::string& stdin_data) {
  std::vector<std::string> argv{CURVEBUS_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run(argv, dir / ("cli-" + std::to_string(++n)), broker.client_env(name), 20000ms,
             stdin_data);
}

}  // namespace curvebus::test
