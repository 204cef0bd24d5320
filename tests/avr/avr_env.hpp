// Test helpers for the real-firmware tests: our Alex firmware (firmware/alex)
// running in alex-avr (the simavr runner, paced to real time, UART0 on a
// pseudo-terminal), driven either straight over the pty (SerialPort, with the
// protocol's frames built here) or through a real broker and a real
// curvebus-robot-agent on 127.0.0.1 (AvrRobot, with a Controller from the agent tests).
//
// Ownership: every object owns the processes it started and stops them (by
// PID) when it goes away.  Threads: everything here is called from the test's thread.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "controller.hpp"
#include "curvebus/client.hpp"
#include "fixture.hpp"
#include "process.hpp"
#include "robot.pb.h"

namespace curvebus::test::avr {

namespace rv1 = ::curvebus::robot::v1;
using namespace std::chrono_literals;

// Path of a firmware image built in firmware/alex ("alex.elf", ...).
std::string firmware(const std::string& name);
std::int64_t now_wall_ms();

// ------------------------------------------------------------ the protocol
enum : std::uint8_t { kCommand = 0, kResponse = 1, kError = 2, kMessage = 3, kHello = 4 };
enum : std::uint8_t {
  kForward = 0,
  kReverse = 1,
  kTurnLeft = 2,
  kTurnRight = 3,
  kStop = 4,
  kGetStats = 5,
  kClearStats = 6
};
enum : std::uint8_t { kOk = 0, kStatus = 1, kBadPacket = 2, kBadChecksum = 3, kBadCommand = 4 };

// One 140-byte frame, unused bytes zero.
std::string frame(std::uint8_t type, std::uint8_t command, std::vector<std::uint32_t> params = {});
struct Packet {
  std::uint8_t type = 0, code = 0;
  std::array<std::uint32_t, 16> params{};
};
// The packet of a 140-byte frame, if magic, size and checksum are right.
std::optional<Packet> parse(const std::string& frame140);

// The host end of the pty, raw.
class SerialPort {
 public:
  explicit SerialPort(const std::string& path);
  ~SerialPort();
  bool ok() const { return fd_ >= 0; }
  bool write(const std::string& bytes);
  // Reads exactly n bytes (or fewer on timeout).
  std::string read(std::size_t n, std::chrono::milliseconds timeout);
  // Writes `request` and reads one 140-byte reply; the time from the first
  // byte written to the last byte read is stored in `round_trip_ms`.
  std::optional<Packet> exchange(const std::string& request, double* round_trip_ms = nullptr,
                                 std::chrono::milliseconds timeout = 1500ms);
  // Bytes already waiting (non-blocking).
  std::string drain();

 private:
  int fd_ = -1;
};

// ------------------------------------------------------------- the runner
struct AvrEvent {
  double t = 0;              // simulated seconds since reset
  std::int64_t wall_ms = 0;  // wall clock when logged
  std::string text;          // e.g. "motors forward 60% lf=153 ...", "line in COMMAND STOP ..."
};

class AvrRunner {
 public:
  // Starts alex-avr on `firmware_path` with a --link and a --control FIFO in `dir`.
  AvrRunner(const std::string& dir, const std::string& firmware_path,
            const std::vector<std::string>& extra = {});
  bool ok() const { return ok_; }
  const std::string& tty() const { return tty_; }
  bool control(const std::string& line);
  std::vector<AvrEvent> events();
  // Motor events only ("motors ..."), in order.
  std::vector<AvrEvent> motor_events();
  // The first event at or after `since_wall_ms` whose text contains `needle`.
  std::optional<AvrEvent> wait_event(const std::string& needle, std::int64_t since_wall_ms,
                                     std::chrono::milliseconds timeout);
  // The motor state (text after "motors ") at `wall_ms` according to the log.
  std::string motors_at(std::int64_t wall_ms);
  bool motors_stopped_now();
  // The longest stall of the simulator ("pace lag", ms) logged in
  // [from_wall_ms, to_wall_ms]; 0 when it kept up with the wall clock.
  std::int64_t max_lag_ms(std::int64_t from_wall_ms, std::int64_t to_wall_ms);
  Process& process() { return *process_; }

 private:
  std::string tty_, control_;
  std::unique_ptr<Process> process_;
  bool ok_ = false;
};

// --------------------------------------------------- broker, agent, runner
struct AvrRobotOptions {
  std::string firmware = "alex.elf";
  int baud = 9600;
  int telemetry_ms = 500;
  int deadman_ms = 500;
  std::vector<std::string> runner_args;
  std::vector<std::string> agent_args;
};

// A whole robot: broker, alex-avr with our firmware, and the agent between
// them, plus the operator "op1" (may drive and clear an e-stop) and the
// client "op2" (may publish commands; not connected here).  The agent binary is the build's, or
// $CURVEBUS_AVR_AGENT_BIN when set (to measure another build of the agent).
class AvrRobot {
 public:
  explicit AvrRobot(AvrRobotOptions options = {});
  ~AvrRobot();
  bool ok() const { return ok_; }
  bool start_agent();
  // The `curvebus` CLI as `name`.
  RunResult cli(const std::string& name, std::vector<std::string> args,
                const std::string& stdin_data = "");
  std::string agent_log();

  TempDir dir{"avr"};
  BrokerHarness broker;
  std::unique_ptr<AvrRunner> runner;
  std::unique_ptr<Process> agent;
  std::unique_ptr<Controller> op;

 private:
  AvrRobotOptions options_;
  bool ok_ = false;
};

// Percentile (0..100) of `v` (nearest rank); 0 for an empty vector.
double percentile(std::vector<double> v, double p);

}  // namespace curvebus::test::avr
