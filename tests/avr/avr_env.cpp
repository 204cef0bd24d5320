#include "avr_env.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "curvebus/codec.hpp"

namespace curvebus::test::avr {

std::string firmware(const std::string& name) {
  return std::string(ALEX_FIRMWARE_DIR) + "/" + name;
}

std::int64_t now_wall_ms() {
  return wall_clock_us() / 1000;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return v[std::min(i, v.size() - 1)];
}

// ------------------------------------------------------------ the protocol

namespace {
void put_le32(std::string& s, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get_le32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<std::uint8_t>(s[at + static_cast<std::size_t>(i)]);
  return v;
}
}  // namespace

std::string frame(std::uint8_t type, std::uint8_t command, std::vector<std::uint32_t> params) {
  std::string f(140, '\0');
  f[0] = '\xFF';
  f[1] = '\xFE';
  f[2] = '\xFD';
  f[3] = '\xFC';
  put_le32(f, 4, 100);
  f[8] = static_cast<char>(type);
  f[9] = static_cast<char>(command);
  for (std::size_t i = 0; i < params.size() && i < 16; ++i) put_le32(f, 8 + 36 + 4 * i, params[i]);
  std::uint8_t sum = 0;
  for (std::size_t i = 8; i < 108; ++i) sum ^= static_cast<std::uint8_t>(f[i]);
  f[136] = static_cast<char>(sum);
  return f;
}

std::optional<Packet> parse(const std::string& f) {
  if (f.size() != 140 || f.compare(0, 4, "\xFF\xFE\xFD\xFC") != 0 || get_le32(f, 4) != 100)
    return std::nullopt;
  std::uint8_t sum = 0;
  for (std::size_t i = 8; i < 108; ++i) sum ^= static_cast<std::uint8_t>(f[i]);
  if (sum != static_cast<std::uint8_t>(f[136])) return std::nullopt;
  Packet p;
  p.type = static_cast<std::uint8_t>(f[8]);
  p.code = static_cast<std::uint8_t>(f[9]);
  for (std::size_t i = 0; i < 16; ++i) p.params[i] = get_le32(f, 8 + 36 + 4 * i);
  return p;
}

// -------------------------------------------------------------- SerialPort

SerialPort::SerialPort(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) return;
  termios tio{};
  ::tcgetattr(fd_, &tio);
  ::cfmakeraw(&tio);
  ::tcsetattr(fd_, TCSANOW, &tio);
}

SerialPort::~SerialPort() {
  if (fd_ >= 0) ::close(fd_);
}

bool SerialPort::write(const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return false;
    } else {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 10);
    }
  }
  return true;
}

std::string SerialPort::read(std::size_t n, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    const ssize_t r = ::read(fd_, buf, std::min(sizeof buf, n - out.size()));
    if (r > 0) out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

std::optional<Packet> SerialPort::exchange(const std::string& request, double* round_trip_ms,
                                           std::chrono::milliseconds timeout) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!write(request)) return std::nullopt;
  const std::string reply = read(140, timeout);
  if (round_trip_ms)
    *round_trip_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return parse(reply);
}

std::string SerialPort::drain() {
  std::string out;
  char buf[512];
  ssize_t r;
  while ((r = ::read(fd_, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(r));
  return out;
}

// --------------------------------------------------------------- AvrRunner

AvrRunner::AvrRunner(const std::string& dir, const std::string& firmware_path,
                     const std::vector<std::string>& extra)
    : tty_(dir + "/alex-tty"), control_(dir + "/alex-control") {
  std::vector<std::string> argv{ALEX_AVR_BIN, "--link", tty_, "--control", control_};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(firmware_path);
  process_ = std::make_unique<Process>(argv, dir + "/alex-avr");
  ok_ = wait_until(
      [&] { return ::access(tty_.c_str(), F_OK) == 0 && ::access(control_.c_str(), F_OK) == 0; },
      5000ms);
  // The firmware has configured its UART once the runner logged the rate.
  ok_ = ok_ && wait_event("uart ", 0, 5000ms).has_value();
}

bool AvrRunner::control(const std::string& line) {
  return write_control_line(control_, line);
}

std::vector<AvrEvent> AvrRunner::events() {
  std::vector<AvrEvent> out;
  std::istringstream in(process_->out());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("t=", 0) != 0) continue;
    AvrEvent e;
    std::istringstream words(line);
    std::string t, w;
    words >> t >> w;
    if (w.rfind("wall_ms=", 0) != 0) continue;
    e.t = std::atof(t.c_str() + 2);
    e.wall_ms = std::atoll(w.c_str() + 8);
    std::getline(words, e.text);
    if (!e.text.empty() && e.text[0] == ' ') e.text.erase(0, 1);
    out.push_back(e);
  }
  return out;
}

std::vector<AvrEvent> AvrRunner::motor_events() {
  std::vector<AvrEvent> out;
  for (auto& e : events())
    if (e.text.rfind("motors ", 0) == 0) out.push_back(e);
  return out;
}

std::optional<AvrEvent> AvrRunner::wait_event(const std::string& needle, std::int64_t since_wall_ms,
                                              std::chrono::milliseconds timeout) {
  std::optional<AvrEvent> found;
  wait_until(
      [&] {
        for (const auto& e : events())
          if (e.wall_ms >= since_wall_ms && e.text.find(needle) != std::string::npos) {
            found = e;
            return true;
          }
        return false;
      },
      timeout, 5ms);
  return found;
}

std::string AvrRunner::motors_at(std::int64_t wall_ms) {
  std::string state = "unknown";
  for (const auto& e : motor_events()) {
    if (e.wall_ms > wall_ms) break;
    state = e.text.substr(7);
  }
  return state;
}

bool AvrRunner::motors_stopped_now() {
  const auto m = motor_events();
  return !m.empty() && m.back().text.rfind("motors stopped", 0) == 0;
}

std::int64_t AvrRunner::max_lag_ms(std::int64_t from_wall_ms, std::int64_t to_wall_ms) {
  std::int64_t lag = 0;
  for (const auto& e : events())
    if (e.wall_ms >= from_wall_ms && e.wall_ms <= to_wall_ms && e.text.rfind("pace lag ", 0) == 0)
      lag = std::max<std::int64_t>(lag, std::atoll(e.text.c_str() + 9));
  return lag;
}

// ---------------------------------------------------------------- AvrRobot

AvrRobot::AvrRobot(AvrRobotOptions options)
    : broker(CURVEBUS_BROKER_BIN, dir.path()), options_(std::move(options)) {
  broker.add_client({"alex",
                     {"robot/alex/ack", "robot/alex/telemetry", "robot/alex/status"},
                     {"robot/alex/cmd", "robot/alex/cmd/clear-estop", "$SYS/presence/+"},
                     false,
                     "agent"});
  broker.add_client({"op1", {"robot/alex/cmd", "robot/alex/cmd/clear-estop"}, {"robot/alex/#"}});
  broker.add_client({"op2", {"robot/alex/cmd"}, {"robot/alex/#"}});
  broker.add_client({"viewer", {}, {"robot/alex/#"}});
  if (!broker.start()) return;
  std::vector<std::string> runner_args = options_.runner_args;
  runner = std::make_unique<AvrRunner>(dir.path(), firmware(options_.firmware), runner_args);
  if (!runner->ok()) return;
  op = std::make_unique<Controller>(broker, "op1");
  if (!op->connected()) return;
  ok_ = start_agent();
}

AvrRobot::~AvrRobot() {
  op.reset();
  if (agent) agent->stop();
  if (runner) runner->process().stop();
}

bool AvrRobot::start_agent() {
  const char* bin = std::getenv("CURVEBUS_AVR_AGENT_BIN");
  std::vector<std::string> argv{bin && *bin ? bin : CURVEBUS_AGENT_BIN,
                                "--serial",
                                runner->tty(),
                                "--robot",
                                "alex",
                                "--baud",
                                std::to_string(options_.baud),
                                "--settle-ms",
                                "0",
                                "--telemetry-ms",
                                std::to_string(options_.telemetry_ms),
                                "--deadman-ms",
                                std::to_string(options_.deadman_ms),
                                "--endpoint",
                                broker.endpoint(),
                                "--server-key",
                                broker.public_file("broker"),
                                "--key",
                                broker.secret_file("alex"),
                                "--home",
                                dir / "agent-home",
                                "--log-level",
                                "debug"};
  argv.insert(argv.end(), options_.agent_args.begin(), options_.agent_args.end());
  std::error_code ec;
  std::filesystem::create_directories(dir / "agent-home", ec);  // the e-stop latch lives there
  agent = std::make_unique<Process>(argv, dir / "agent");
  // Ready: the agent says so in its retained status (serial link up).
  return op->wait_status([](const rv1::RobotStatus& s) { return s.serial_up(); }, 10000ms)
      .has_value();
}

RunResult AvrRobot::cli(const std::string& name, std::vector<std::string> args,
                        const std::string& stdin_data) {
  std::vector<std::string> argv{CURVEBUS_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run(argv, dir / ("cli-" + std::to_string(++n)), broker.client_env(name), 20000ms,
             stdin_data);
}

std::string AvrRobot::agent_log() {
  return agent ? agent->out() + agent->err() : std::string();
}

}  // namespace curvebus::test::avr
