// `curvebus teleop`: drive a robot from the keyboard of a terminal.
//
// Arrows or WASD move (distance / angle per press), space stops, e is an
// emergency stop, c clears it, q quits (sending STOP first).  While a motion
// is under way the tool renews the robot's lease with keepalive Commands well
// inside the agent's dead-man time, so letting go of the keyboard for good
// (closing the terminal, a crash) stops the robot.  One status line shows the
// last ack and the telemetry.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

#include "commands.hpp"
#include "curvebus/codec.hpp"
#include "robot.pb.h"

namespace curvebus::cli {

namespace rv1 = ::curvebus::robot::v1;

void add_teleop_options(CLI::App* app, TeleopOptions& o) {
  app->add_option("--robot", o.robot, "Robot id")->capture_default_str();
  app->add_option("--distance", o.distance_cm, "cm per forward/backward press")
      ->capture_default_str();
  app->add_option("--angle", o.angle_deg, "degrees per left/right press")->capture_default_str();
  app->add_option("--speed", o.speed_pct, "Speed %")->capture_default_str();
  app->add_option("--keepalive-ms", o.keepalive_ms, "Lease renewal period while moving")
      ->capture_default_str();
}

namespace {

class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios t = saved_;
    t.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

enum class Key { None, Up, Down, Left, Right, Stop, Estop, Clear, Quit, Stats };

// Decodes keys from raw bytes (arrow keys are ESC [ A..D).
Key next_key(std::string& buf) {
  while (!buf.empty()) {
    const char c = buf[0];
    if (c == '\x1b') {
      if (buf.size() < 3) return Key::None;
      const char k = buf[2];
      buf.erase(0, 3);
      switch (k) {
        case 'A':
          return Key::Up;
        case 'B':
          return Key::Down;
        case 'C':
          return Key::Right;
        case 'D':
          return Key::Left;
        default:
          continue;
      }
    }
    buf.erase(0, 1);
    switch (c) {
      case 'w':
      case 'W':
        return Key::Up;
      case 's':
      case 'S':
        return Key::Down;
      case 'a':
      case 'A':
        return Key::Left;
      case 'd':
      case 'D':
        return Key::Right;
      case ' ':
        return Key::Stop;
      case 'e':
      case 'E':
        return Key::Estop;
      case 'c':
      case 'C':
        return Key::Clear;
      case 'g':
      case 'G':
        return Key::Stats;
      case 'q':
      case 'Q':
      case '\x03':
      case '\x04':
        return Key::Quit;
      default:
        break;
    }
  }
  return Key::None;
}

}  // namespace

int run_teleop(const Connection& conn, const TeleopOptions& o) {
  auto client = connect_client(conn);
  if (!client) return fail(client.status());
  const std::string base = "robot/" + o.robot + "/";
  std::mutex mu;
  std::string last_ack = "-", telemetry = "-", status = "-";
  bool dirty = true;
  Status s = (*client)->subscribe(
      {base + "ack", base + "telemetry", base + "status"},
      [&](const Message& m) {
        std::lock_guard<std::mutex> lock(mu);
        if (m.topic == base + "ack") {
          rv1::CommandResult r;
          // A keepalive that renewed the lease changes nothing the operator
          // needs to see: the line keeps the ack of the last motion command.
          if (r.ParseFromString(m.payload) &&
              !(r.action() == "keepalive" && r.status() == rv1::RESULT_OK))
            last_ack = r.action() + " " + rv1::ResultStatus_Name(r.status()).substr(7) +
                       (r.detail().empty() ? "" : " (" + r.detail() + ")");
        } else if (m.topic == base + "telemetry") {
          rv1::Telemetry t;
          if (t.ParseFromString(m.payload))
            telemetry = "ticks L" + std::to_string(t.left_forward_ticks()) + "/R" +
                        std::to_string(t.right_forward_ticks()) + " fwd " +
                        std::to_string(t.forward_dist_cm()) + " cm rev " +
                        std::to_string(t.reverse_dist_cm()) + " cm";
        } else {
          rv1::RobotStatus st;
          if (st.ParseFromString(m.payload))
            status = std::string(st.serial_up() ? "serial up" : "SERIAL DOWN") +
                     (st.moving() ? ", moving" : "") +
                     (st.estop_latched() ? ", E-STOP LATCHED" : "");
        }
        dirty = true;
      },
      true);
  if (!s) return fail(s);

  RawTerminal raw;
  std::printf(
      "teleop %s: arrows/WASD move, space stop, e e-stop, c clear e-stop, g stats, q quit\n",
      o.robot.c_str());
  int n = 0;
  const std::string prefix = "teleop-" + std::to_string(::getpid()) + "-";
  auto send = [&](rv1::Command c) {
    c.set_id(prefix + std::to_string(++n));
    c.set_issued_us(wall_clock_us());
    // Clearing an e-stop has its own topic (and ACL right): robot/<id>/cmd/clear-estop.
    (*client)->publish(base + (c.has_clear_estop() ? "cmd/clear-estop" : "cmd"),
                       c.SerializeAsString());
  };
  bool moving = false;
  std::int64_t next_keepalive = 0;
  std::string input;
  bool quit = false;
  while (!quit && !g_interrupted) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    ::poll(&p, 1, 50);
    if (p.revents & POLLIN) {
      char buf[64];
      const ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r <= 0) {
        quit = true;  // the terminal went away
      } else {
        input.append(buf, static_cast<std::size_t>(r));
      }
    }
    for (Key k = next_key(input); k != Key::None; k = next_key(input)) {
      rv1::Command c;
      switch (k) {
        case Key::Up:
          c.mutable_forward()->set_distance_cm(o.distance_cm);
          c.mutable_forward()->set_speed_pct(o.speed_pct);
          moving = true;
          break;
        case Key::Down:
          c.mutable_backward()->set_distance_cm(o.distance_cm);
          c.mutable_backward()->set_speed_pct(o.speed_pct);
          moving = true;
          break;
        case Key::Left:
          c.mutable_left()->set_angle_deg(o.angle_deg);
          c.mutable_left()->set_speed_pct(o.speed_pct);
          moving = true;
          break;
        case Key::Right:
          c.mutable_right()->set_angle_deg(o.angle_deg);
          c.mutable_right()->set_speed_pct(o.speed_pct);
          moving = true;
          break;
        case Key::Stop:
          c.mutable_stop();
          moving = false;
          break;
        case Key::Estop:
          c.mutable_estop()->set_reason("teleop e-stop key");
          moving = false;
          break;
        case Key::Clear:
          c.mutable_clear_estop();
          break;
        case Key::Stats:
          c.mutable_get_stats();
          break;
        case Key::Quit:
          quit = true;
          continue;
        case Key::None:
          break;
      }
      send(c);
      next_keepalive = steady_ms() + o.keepalive_ms;
    }
    if (moving && steady_ms() >= next_keepalive) {
      rv1::Command c;
      c.mutable_keepalive();
      send(c);
      next_keepalive = steady_ms() + o.keepalive_ms;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (dirty) {
      std::printf("\r\x1b[K[%s] ack: %s | %s", status.c_str(), last_ack.c_str(), telemetry.c_str());
      std::fflush(stdout);
      dirty = false;
    }
  }
  rv1::Command stop;
  stop.mutable_stop();
  send(stop);
  rv1::Command release;
  release.mutable_release();
  send(release);
  std::printf("\nteleop: stopped\n");
  (*client)->close();
  return kExitOk;
}

}  // namespace curvebus::cli
