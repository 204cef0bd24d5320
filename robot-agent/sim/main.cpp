// alex-sim: a simulated Alex Arduino on a pseudo-terminal.
//
// The firmware model (sim.hpp) runs on CLOCK_MONOTONIC in microseconds: each
// byte the host writes is timestamped as it is read from the pty and queued
// on the modelled line behind the host's earlier bytes, so it reaches the
// firmware at the real line rate although a pty delivers writes at once;
// each byte the firmware sends is handed to the pty when its stop bit ends in
// the model (so the host sees the line rate too, at most ~1 ms late, like a
// USB serial bridge).  Faithful by default (receive ring that drops, blocking
// Serial.write, counting 140-byte window, one packet per loop turn);
// --lenient is the old forgiving model, for tests that need it.
//
// stdout (line-buffered, flushed per line; human logs go to stderr):
//   device /dev/pts/N                       always the first line
//   event wall_ms=W mono_ms=M <what>        one per event, <what> being e.g.
//     start device=/dev/pts/N baud=9600 model=faithful framing=count hello=ignore
//           byte_us=1040 rx_ring=64 tx_ring=64 loop_us=50 message_after_stop=off
//     rx COMMAND FORWARD p0=50 p1=75        a valid frame reached the firmware
//     rx HELLO | rx BAD_MAGIC | rx BAD_CHECKSUM | rx BAD_SIZE ... | rx skipped N bytes
//     rx dropped N bytes (receive ring full, 63 held; T in all)
//     tx RESPONSE OK | tx RESPONSE STATUS | tx ERROR BAD_PACKET | tx MESSAGE ...
//     loop blocked 79.04 ms in Serial.write
//     fault drop <packet> | fault corrupt <packet> | fault garbage N bytes
//     fault rxgarbage N bytes | desync | realigned
//     motion stopped (STOP|target reached|reboot)
//     control <line> | control: unknown command '<line>' | control: <refusal>
//     vanish for MS ms | reboot | reappear device /dev/pts/M | exit
// M is the model time of the event in CLOCK_MONOTONIC ms (steady_ms()); W is
// the wall clock (ms since the epoch) at that moment.
//
// Faults come from flags or, at run time, from lines written to the --control
// FIFO (or appended to an existing regular file at that path):
//   drop N | corrupt N | garbage N | rxgarbage N | delay MS | vanish MS |
//   strict on|off | lenient on|off | message-after-stop on|off |
//   hello ignore|answer|require
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "curvebus/codec.hpp"
#include "sim/sim.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::alexsim;

volatile sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) {
  g_stop = 1;
}

// CLOCK_MONOTONIC in µs, the same clock as steady_ms().
std::int64_t mono_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

void event_at(std::int64_t at_us, const std::string& what) {
  const std::int64_t wall_us = wall_clock_us() - (mono_us() - at_us);
  std::printf("event wall_ms=%lld mono_ms=%lld %s\n", static_cast<long long>(wall_us / 1000),
              static_cast<long long>(at_us / 1000), what.c_str());
  std::fflush(stdout);
}

struct Pty {
  int master = -1;
  int slave = -1;  // kept open so the termios stay raw and the master never sees EIO
  std::string path;
};

bool open_pty(Pty& p, std::string& err) {
  p.master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p.master < 0 || ::grantpt(p.master) != 0 || ::unlockpt(p.master) != 0) {
    err = std::string("cannot create a pseudo-terminal: ") + std::strerror(errno);
    return false;
  }
  const char* name = ::ptsname(p.master);
  if (!name) {
    err = "ptsname failed";
    return false;
  }
  p.path = name;
  p.slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p.slave < 0) {
    err = std::string("cannot open ") + name + ": " + std::strerror(errno);
    return false;
  }
  termios t{};
  ::tcgetattr(p.slave, &t);
  ::cfmakeraw(&t);
  ::tcsetattr(p.slave, TCSANOW, &t);
  ::fcntl(p.master, F_SETFL, ::fcntl(p.master, F_GETFL) | O_NONBLOCK);
  return true;
}

void close_pty(Pty& p) {
  if (p.slave >= 0) ::close(p.slave);
  if (p.master >= 0) ::close(p.master);
  p = Pty{};
}

void update_link(const std::string& link, const std::string& target) {
  if (link.empty()) return;
  const std::string tmp = link + ".tmp";
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), link.c_str()) != 0)
    std::fprintf(stderr, "alex-sim: cannot link %s -> %s: %s\n", link.c_str(), target.c_str(),
                 std::strerror(errno));
}

// Runtime fault commands: a FIFO we create, or a regular file someone
// appends lines to (followed like `tail -f`).
struct Control {
  std::string path;
  int fd = -1;
  int keep = -1;  // our own writer, so the FIFO never reports EOF between writers
  bool fifo = false;
  std::string buf;

  bool open(std::string& err) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } else {
      ::unlink(path.c_str());
      if (::mkfifo(path.c_str(), 0600) != 0) {
        err = "cannot create " + path + ": " + std::strerror(errno);
        return false;
      }
      fifo = true;
      fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      keep = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    }
    if (fd < 0) {
      err = "cannot open " + path + ": " + std::strerror(errno);
      return false;
    }
    return true;
  }
  // Complete lines read so far.
  std::vector<std::string> lines() {
    std::vector<std::string> out;
    if (fd < 0) return out;
    char tmp[1024];
    while (true) {
      const ssize_t n = ::read(fd, tmp, sizeof tmp);
      if (n <= 0) break;
      buf.append(tmp, static_cast<std::size_t>(n));
    }
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) out.push_back(std::move(line));
    }
    return out;
  }
  void close() {
    if (fd >= 0) ::close(fd);
    if (keep >= 0) ::close(keep);
    if (fifo) ::unlink(path.c_str());
    fd = keep = -1;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string link, control_path, hello = "ignore", framing;
  int delay_ms = 0, vanish_after = 0, vanish_for = 1000;
  bool strict = false, lenient = false, message_after_stop = false;
  Faults flags;
  MotionConfig motion;
  UartConfig uart;
  CLI::App app{
      "alex-sim: a simulated Alex Arduino (CG1112 protocol) on a pseudo-terminal.\n"
      "By default it is as harsh as an Uno running the course firmware: 64-byte receive ring\n"
      "(63 held, overflow dropped), Serial.write blocking the loop while the 64-byte transmit\n"
      "ring drains at the line rate, 140-byte counting window, one packet per loop turn."};
  app.add_option("--link", link, "Keep a symlink to the current device at this path");
  app.add_option("--control", control_path,
                 "Create a FIFO here (or follow an existing file) and obey commands written to "
                 "it: drop N, corrupt N, garbage N, rxgarbage N, delay MS, vanish MS, "
                 "strict on|off, lenient on|off, message-after-stop on|off, "
                 "hello ignore|answer|require");
  app.add_option("--baud", uart.baud,
                 "Nominal line rate; both directions run at the rate an Uno really sets "
                 "(9600 -> 1040 us per byte, 57600 -> 170, 115200 -> 85).  0 = instantaneous "
                 "line, only with --lenient")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--lenient", lenient,
               "The old forgiving model, for tests that need it: no receive limit, writes never "
               "block, every frame handled at once, receiver resynchronising on the magic "
               "(unless --strict)");
  auto* strict_opt = app.add_flag(
      "--strict", strict,
      "Same as --framing count (the default unless --lenient): one stray byte shifts every "
      "later 140-byte window until the host re-aligns it");
  app.add_option("--framing", framing,
                 "count (the course's counting window; default) | resync (search for the "
                 "magic; default with --lenient)")
      ->check(CLI::IsMember({"count", "resync"}))
      ->excludes(strict_opt);
  app.add_option("--hello", hello, "HELLO handling: ignore (course default) | answer | require")
      ->capture_default_str()
      ->check(CLI::IsMember({"ignore", "answer", "require"}));
  app.add_flag("--message-after-stop", message_after_stop,
               "Send a MESSAGE \"STOPPED\" right after the OK for STOP, as some team firmwares "
               "do (an unsolicited frame the host must not collide with)");
  app.add_option("--loop-us", uart.loop_us, "Time one loop() turn takes when it writes nothing")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--rx-ring", uart.rx_ring,
                 "Receive ring slots (holds one less); the Uno core has 64")
      ->capture_default_str()
      ->check(CLI::Range(2, 65536));
  app.add_option("--tx-ring", uart.tx_ring,
                 "Transmit ring slots (holds one less); the Uno core has 64")
      ->capture_default_str()
      ->check(CLI::Range(2, 65536));
  app.add_option("--drop-every", flags.drop_every, "Drop every Nth reply (never sent)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--corrupt-every", flags.corrupt_every, "Send every Nth reply with a bad checksum")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--garbage-every", flags.garbage_every,
                 "Write 17 random bytes before every Nth reply")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--delay-ms", delay_ms,
                 "Hold every byte for the host this much longer (the firmware is not slowed)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--vanish-after-ms", vanish_after,
                 "Disappear (close the pty, power-cycle the firmware) this long after start "
                 "(0 = never)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--vanish-for-ms", vanish_for, "... for this long, then reappear as a new pty")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--ticks-per-cm", motion.ticks_per_cm, "Encoder ticks per cm")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--cm-per-s", motion.cm_per_s_at_full, "Straight speed at 100 %")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--ticks-per-deg", motion.ticks_per_deg, "Wheel ticks per degree of turn")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--deg-per-s", motion.deg_per_s_at_full, "Turn rate at 100 %")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (uart.baud == 0 && !lenient) {
    std::fprintf(stderr,
                 "alex-sim: --baud 0 (an instantaneous line) needs --lenient; a faithful Uno "
                 "has a line rate\n");
    return 2;
  }
  HelloMode hello_mode = HelloMode::Ignore;
  parse_hello_mode(hello, hello_mode);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Pty pty;
  std::string err;
  if (!open_pty(pty, err)) {
    std::fprintf(stderr, "alex-sim: %s\n", err.c_str());
    return 1;
  }
  std::printf("device %s\n", pty.path.c_str());
  std::fflush(stdout);

  Control control;
  control.path = control_path;
  if (!control_path.empty() && !control.open(err)) {
    std::fprintf(stderr, "alex-sim: %s\n", err.c_str());
    close_pty(pty);
    return 1;
  }
  update_link(link, pty.path);

  // Bytes the firmware has sent, held until (model time + --delay-ms), then
  // accepted by the pty when it has room.
  std::deque<std::pair<std::int64_t, std::uint8_t>> to_host;
  std::vector<std::uint8_t> unwritten;
  std::unique_ptr<Firmware> fw;
  const auto model_now = [&] { return fw ? fw->now_us() : mono_us(); };
  fw = std::make_unique<Firmware>(
      motion, uart,
      [&](const std::vector<std::uint8_t>& b) {
        const std::int64_t release = model_now() + static_cast<std::int64_t>(delay_ms) * 1000;
        for (auto x : b) to_host.emplace_back(release, x);
      },
      [&](const std::string& e) { event_at(model_now(), e); }, mono_us());
  fw->set_lenient(lenient);
  if (strict || framing == "count")
    fw->set_strict(true);
  else if (framing == "resync")
    fw->set_strict(false);
  fw->set_hello(hello_mode);
  fw->set_message_after_stop(message_after_stop);
  fw->faults() = flags;
  const std::string model = fw->lenient() ? "lenient" : "faithful";
  const std::string framing_now = fw->strict() ? "count" : "resync";
  std::fprintf(stderr,
               "alex-sim: %s at %d baud (%lld us per byte), %s model, %s framing, hello %s\n",
               pty.path.c_str(), uart.baud, static_cast<long long>(fw->byte_us()), model.c_str(),
               framing_now.c_str(), hello.c_str());
  event_at(mono_us(), "start device=" + pty.path + " baud=" + std::to_string(uart.baud) +
                          " model=" + model + " framing=" + framing_now + " hello=" + hello +
                          " byte_us=" + std::to_string(fw->byte_us()) +
                          " rx_ring=" + std::to_string(uart.rx_ring) +
                          " tx_ring=" + std::to_string(uart.tx_ring) +
                          " loop_us=" + std::to_string(uart.loop_us) +
                          " message_after_stop=" + (message_after_stop ? "on" : "off"));

  std::int64_t vanish_at = vanish_after > 0 ? mono_us() + vanish_after * 1000LL : 0;
  std::int64_t reappear_at = 0;

  auto vanish = [&](int ms) {
    event_at(mono_us(), "vanish for " + std::to_string(ms) + " ms");
    std::fprintf(stderr, "alex-sim: %s vanishes for %d ms\n", pty.path.c_str(), ms);
    close_pty(pty);
    // Like udev removing /dev/ttyACM0: while the device is gone its name
    // names nothing, and a pty number freed here may soon belong to
    // another program's terminal.
    if (!link.empty()) ::unlink(link.c_str());
    fw->run_until(mono_us());
    fw->reboot();  // a USB-powered Uno loses power with its port
    to_host.clear();
    unwritten.clear();
    reappear_at = mono_us() + ms * 1000LL;
  };

  auto obey = [&](const std::string& line) {
    std::istringstream in(line);
    std::string cmd, arg;
    in >> cmd >> arg;
    int n = 0;
    bool numeric = false;
    try {
      std::size_t used = 0;
      n = std::stoi(arg, &used);
      numeric = used == arg.size() && n >= 0;
    } catch (const std::exception&) {
      numeric = false;
    }
    const bool counted = cmd == "drop" || cmd == "corrupt" || cmd == "garbage" ||
                         cmd == "rxgarbage" || cmd == "delay" || cmd == "vanish";
    const bool on_off = cmd == "strict" || cmd == "lenient" || cmd == "message-after-stop";
    HelloMode m = HelloMode::Ignore;
    if ((counted && !numeric) || (on_off && arg != "on" && arg != "off") ||
        (cmd == "hello" && !parse_hello_mode(arg, m)) || (!counted && !on_off && cmd != "hello")) {
      event_at(mono_us(), "control: unknown command '" + line + "'");
      return;
    }
    fw->run_until(mono_us());
    if (cmd == "lenient" && arg == "off" && fw->byte_us() == 0) {
      event_at(mono_us(), "control: cannot leave the lenient model at baud 0 ('" + line + "')");
      return;
    }
    event_at(mono_us(), "control " + line);
    if (cmd == "drop") {
      fw->faults().drop_next = n;
    } else if (cmd == "corrupt") {
      fw->faults().corrupt_next = n;
    } else if (cmd == "garbage") {
      fw->send_garbage(n);
    } else if (cmd == "rxgarbage") {
      // Stray bytes arriving at the Arduino (noise, a host bug), on the line
      // behind whatever the host has written.
      std::vector<std::uint8_t> junk(static_cast<std::size_t>(n), 0x55);
      fw->host_write(junk.data(), junk.size(), mono_us());
      event_at(mono_us(), "fault rxgarbage " + std::to_string(n) + " bytes");
    } else if (cmd == "delay") {
      delay_ms = n;
    } else if (cmd == "vanish") {
      if (pty.master >= 0) vanish(n > 0 ? n : 1000);
    } else if (cmd == "strict") {
      fw->set_strict(arg == "on");
    } else if (cmd == "lenient") {
      fw->set_lenient(arg == "on");
    } else if (cmd == "message-after-stop") {
      fw->set_message_after_stop(arg == "on");
    } else if (cmd == "hello") {
      fw->set_hello(m);
    }
  };

  std::uint8_t buf[4096];
  while (!g_stop) {
    const std::int64_t now = mono_us();
    if (pty.master < 0) {
      if (now >= reappear_at) {
        if (!open_pty(pty, err)) {
          std::fprintf(stderr, "alex-sim: %s\n", err.c_str());
          break;
        }
        update_link(link, pty.path);
        std::fprintf(stderr, "alex-sim: reappeared as %s\n", pty.path.c_str());
        event_at(mono_us(), "reappear device " + pty.path);
      }
    } else if (vanish_at > 0 && now >= vanish_at) {
      vanish_at = 0;
      vanish(vanish_for);
    }
    pollfd fds[2];
    nfds_t nfds = 0;
    const int master_idx = pty.master >= 0 ? static_cast<int>(nfds) : -1;
    if (pty.master >= 0)
      fds[nfds++] =
          pollfd{pty.master, static_cast<short>(POLLIN | (unwritten.empty() ? 0 : POLLOUT)), 0};
    const int control_idx = control.fifo ? static_cast<int>(nfds) : -1;
    if (control.fifo) fds[nfds++] = pollfd{control.fd, POLLIN, 0};
    // Sleep until the model has something to do, in whole ms (bytes reach the
    // host up to ~1 ms late; the model's own timing is exact).
    std::int64_t wake = fw->next_event_us();
    if (!to_host.empty()) wake = std::min(wake, to_host.front().first);
    int timeout_ms = fw->moving() ? 5 : 20;
    if (wake != Firmware::kNever)
      timeout_ms = static_cast<int>(
          std::clamp<std::int64_t>((wake - mono_us() + 999) / 1000, 0, timeout_ms));
    ::poll(fds, nfds, timeout_ms);

    if (master_idx >= 0 && (fds[master_idx].revents & POLLIN)) {
      const ssize_t n = ::read(pty.master, buf, sizeof buf);
      if (n > 0) {
        // The pty delivered the host's write at once; the model puts it on
        // the line from this moment, behind the host's earlier bytes.
        const std::int64_t t = mono_us();
        fw->run_until(t);
        fw->host_write(buf, static_cast<std::size_t>(n), t);
      }
    }
    if (control_idx < 0 || (fds[control_idx].revents & POLLIN))
      for (const auto& line : control.lines()) obey(line);

    const std::int64_t t = mono_us();
    fw->run_until(t);
    while (!to_host.empty() && to_host.front().first <= t) {
      unwritten.push_back(to_host.front().second);
      to_host.pop_front();
    }
    if (pty.master >= 0) {
      // Never block: what the pty does not take now waits for the next round.
      while (!unwritten.empty()) {
        const ssize_t w = ::write(pty.master, unwritten.data(), unwritten.size());
        if (w <= 0) break;
        unwritten.erase(unwritten.begin(), unwritten.begin() + w);
      }
    } else {
      unwritten.clear();
    }
  }
  event_at(mono_us(), "exit");
  std::fprintf(stderr, "alex-sim: exiting\n");
  close_pty(pty);
  if (!link.empty()) ::unlink(link.c_str());
  control.close();
  return 0;
}
