// alex-sim: a simulated Alex Arduino on a pseudo-terminal.
//
// stdout (line-buffered, flushed per line; human logs go to stderr):
//   device /dev/pts/N                       always the first line
//   event wall_ms=W mono_ms=M <what>        one per event, <what> being e.g.
//     start device=/dev/pts/N baud=9600 framing=resync hello=ignore
//     rx COMMAND FORWARD p0=50 p1=75        a valid frame reached the firmware
//     rx HELLO | rx BAD_MAGIC | rx BAD_CHECKSUM | rx skipped N bytes
//     tx RESPONSE OK | tx RESPONSE STATUS | tx ERROR BAD_PACKET ...
//     fault drop <packet> | fault corrupt <packet> | fault garbage N bytes
//     fault rxgarbage N bytes | desync | realigned
//     motion stopped (STOP|target reached|reboot)
//     control <line> | control: unknown command '<line>'
//     vanish for MS ms | reboot | reappear device /dev/pts/M | exit
// W is wall-clock ms since the epoch, M is CLOCK_MONOTONIC ms (steady_ms()).
//
// Faults come from flags or, at run time, from lines written to the --control
// FIFO (or appended to an existing regular file at that path):
//   drop N | corrupt N | garbage N | rxgarbage N | delay MS | vanish MS |
//   strict on|off | hello ignore|answer|require
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <sstream>
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

std::int64_t mono_ms() {
  return steady_ms();
}

void event(const std::string& what) {
  std::printf("event wall_ms=%lld mono_ms=%lld %s\n",
              static_cast<long long>(wall_clock_us() / 1000), static_cast<long long>(mono_ms()),
              what.c_str());
  std::fflush(stdout);
}

// Bytes waiting to cross the simulated line, released at the baud rate.
struct Line {
  int baud = 0;                                             // 0 = unpaced
  std::deque<std::pair<std::int64_t, std::uint8_t>> bytes;  // (not before, byte)
  double budget = 0;
  std::int64_t last_ms = 0;

  void push(const std::vector<std::uint8_t>& b, std::int64_t not_before) {
    for (auto x : b) bytes.emplace_back(not_before, x);
  }
  // Bytes that may cross now.
  std::vector<std::uint8_t> take(std::int64_t now) {
    std::vector<std::uint8_t> out;
    if (bytes.empty() || bytes.front().first > now) {
      budget = 0;
      last_ms = now;
      return out;
    }
    if (baud > 0) {
      // 10 bit times per byte (8N1); a short burst is allowed after a pause.
      budget += static_cast<double>(now - last_ms) * baud / 10000.0;
      budget = std::min(budget, 16.0);
    }
    last_ms = now;
    while (!bytes.empty() && bytes.front().first <= now && (baud == 0 || budget >= 1)) {
      out.push_back(bytes.front().second);
      bytes.pop_front();
      if (baud > 0) budget -= 1;
    }
    return out;
  }
};

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
  std::string link, control_path, hello = "ignore";
  int baud = 9600, delay_ms = 0, vanish_after = 0, vanish_for = 1000;
  bool strict = false;
  Faults flags;
  MotionConfig motion;
  CLI::App app{"alex-sim: a simulated Alex Arduino (CG1112 protocol) on a pseudo-terminal"};
  app.add_option("--link", link, "Keep a symlink to the current device at this path");
  app.add_option("--control", control_path,
                 "Create a FIFO here (or follow an existing file) and obey fault commands "
                 "written to it: drop N, corrupt N, garbage N, rxgarbage N, delay MS, vanish MS, "
                 "strict on|off, hello ignore|answer|require");
  app.add_option("--baud", baud,
                 "Pace both directions like a real line, 10 bits per byte (0 = unpaced)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--strict", strict,
               "Frame by byte count like the course firmware: a stray byte desynchronises it "
               "until the host re-aligns it");
  app.add_option("--hello", hello, "HELLO handling: ignore (course default) | answer | require")
      ->capture_default_str()
      ->check(CLI::IsMember({"ignore", "answer", "require"}));
  app.add_option("--drop-every", flags.drop_every, "Drop every Nth reply")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--corrupt-every", flags.corrupt_every, "Send every Nth reply with a bad checksum")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--garbage-every", flags.garbage_every, "Random bytes before every Nth reply")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--delay-ms", delay_ms, "Delay every reply by MS")->check(CLI::NonNegativeNumber);
  app.add_option("--vanish-after-ms", vanish_after,
                 "Disappear (close the pty) this long after start (0 = never)")
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

  Line to_host, from_host;
  to_host.baud = from_host.baud = baud;
  Firmware fw(
      motion, [&](const std::vector<std::uint8_t>& b) { to_host.push(b, mono_ms() + delay_ms); },
      [](const std::string& e) { event(e); });
  fw.set_strict(strict);
  fw.set_hello(hello_mode);
  fw.faults() = flags;
  std::fprintf(stderr, "alex-sim: %s at %d baud, %s framing, hello %s\n", pty.path.c_str(), baud,
               strict ? "strict (course)" : "resync", hello.c_str());
  event("start device=" + pty.path + " baud=" + std::to_string(baud) +
        " framing=" + (strict ? "strict" : "resync") + " hello=" + hello);

  std::int64_t vanish_at = vanish_after > 0 ? mono_ms() + vanish_after : 0;
  std::int64_t reappear_at = 0;
  std::vector<std::uint8_t> unwritten;  // accepted by the line, not yet by the pty

  auto vanish = [&](int ms) {
    event("vanish for " + std::to_string(ms) + " ms");
    std::fprintf(stderr, "alex-sim: %s vanishes for %d ms\n", pty.path.c_str(), ms);
    close_pty(pty);
    to_host.bytes.clear();
    from_host.bytes.clear();
    unwritten.clear();
    fw.reboot();  // a USB-powered Uno loses power with its port
    reappear_at = mono_ms() + ms;
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
    HelloMode m = HelloMode::Ignore;
    if ((counted && !numeric) || (cmd == "strict" && arg != "on" && arg != "off") ||
        (cmd == "hello" && !parse_hello_mode(arg, m)) ||
        (!counted && cmd != "strict" && cmd != "hello")) {
      event("control: unknown command '" + line + "'");
      return;
    }
    event("control " + line);
    if (cmd == "drop") {
      fw.faults().drop_next = n;
    } else if (cmd == "corrupt") {
      fw.faults().corrupt_next = n;
    } else if (cmd == "garbage") {
      fw.send_garbage(n);
    } else if (cmd == "rxgarbage") {
      // Stray bytes arriving at the Arduino (noise, a host bug).
      std::vector<std::uint8_t> junk(static_cast<std::size_t>(n), 0x55);
      from_host.push(junk, mono_ms());
      event("fault rxgarbage " + std::to_string(n) + " bytes");
    } else if (cmd == "delay") {
      delay_ms = n;
    } else if (cmd == "vanish") {
      if (pty.master >= 0) vanish(n > 0 ? n : 1000);
    } else if (cmd == "strict") {
      fw.set_strict(arg == "on");
    } else if (cmd == "hello") {
      fw.set_hello(m);
    }
  };

  std::uint8_t buf[4096];
  while (!g_stop) {
    const std::int64_t now = mono_ms();
    if (pty.master < 0) {
      if (now >= reappear_at) {
        if (!open_pty(pty, err)) {
          std::fprintf(stderr, "alex-sim: %s\n", err.c_str());
          break;
        }
        update_link(link, pty.path);
        std::fprintf(stderr, "alex-sim: reappeared as %s\n", pty.path.c_str());
        event("reappear device " + pty.path);
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
    const bool busy =
        !to_host.bytes.empty() || !from_host.bytes.empty() || fw.moving() || !unwritten.empty();
    ::poll(fds, nfds, busy ? 1 : 20);

    if (master_idx >= 0 && (fds[master_idx].revents & POLLIN)) {
      const ssize_t n = ::read(pty.master, buf, sizeof buf);
      if (n > 0) from_host.push(std::vector<std::uint8_t>(buf, buf + n), mono_ms());
    }
    if (control_idx < 0 || (fds[control_idx].revents & POLLIN))
      for (const auto& line : control.lines()) obey(line);

    const std::int64_t t = mono_ms();
    auto in = from_host.take(t);
    if (!in.empty()) fw.receive(in.data(), in.size(), t);
    fw.tick(t);
    if (pty.master >= 0) {
      auto out = to_host.take(t);
      unwritten.insert(unwritten.end(), out.begin(), out.end());
      // Never block: what the pty does not take now waits for the next round.
      while (!unwritten.empty()) {
        const ssize_t w = ::write(pty.master, unwritten.data(), unwritten.size());
        if (w <= 0) break;
        unwritten.erase(unwritten.begin(), unwritten.begin() + w);
      }
    }
  }
  event("exit");
  std::fprintf(stderr, "alex-sim: exiting\n");
  close_pty(pty);
  if (!link.empty()) ::unlink(link.c_str());
  control.close();
  return 0;
}
