// alex-sim: a simulated Alex Arduino on a pseudo-terminal.
//
// Prints `device /dev/pts/N` as its first stdout line (and keeps --link PATH
// pointing at it), then one `event wall_ms=.. mono_ms=.. <what>` line per
// thing that happens: rx/tx packets, faults, motion stops, vanish/reappear.
// Faults come from flags or, at run time, from lines written to the --control
// FIFO: drop N, corrupt N, garbage N, rxgarbage N, delay MS, vanish MS,
// strict on|off, hello ignore|answer|require.
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
    if (bytes.empty()) {
      budget = 0;
      last_ms = now;
      return out;
    }
    if (baud > 0) {
      budget += static_cast<double>(now - last_ms) * baud / 10000.0;
      budget = std::min(budget, 64.0);
      if (budget < 1 && out.empty() && now - last_ms >= 0) budget = std::max(budget, 0.0);
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

}  // namespace

int main(int argc, char** argv) {
  std::string link, control, hello = "ignore";
  int baud = 9600, delay_ms = 0, vanish_after = 0, vanish_for = 1000;
  bool strict = false;
  Faults flags;
  MotionConfig motion;
  CLI::App app{"alex-sim: a simulated Alex Arduino on a pseudo-terminal"};
  app.add_option("--link", link, "Keep a symlink to the device at this path");
  app.add_option("--control", control, "Create a FIFO here and obey fault commands written to it");
  app.add_option("--baud", baud, "Pace the line at this rate (0 = unpaced)")->capture_default_str();
  app.add_flag("--strict", strict, "Frame by byte count like the course firmware (no resync)");
  app.add_option("--hello", hello, "ignore | answer | require")->capture_default_str();
  app.add_option("--drop-every", flags.drop_every, "Drop every Nth reply");
  app.add_option("--corrupt-every", flags.corrupt_every, "Corrupt the checksum of every Nth reply");
  app.add_option("--garbage-every", flags.garbage_every, "Random bytes before every Nth reply");
  app.add_option("--delay-ms", delay_ms, "Delay every reply");
  app.add_option("--vanish-after-ms", vanish_after, "Disappear after this long (0 = never)");
  app.add_option("--vanish-for-ms", vanish_for, "... for this long")->capture_default_str();
  app.add_option("--cm-per-s", motion.cm_per_s_at_full, "Speed at 100 %")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  HelloMode hello_mode;
  if (!parse_hello_mode(hello, hello_mode)) {
    std::fprintf(stderr, "alex-sim: --hello must be ignore, answer or require\n");
    return 1;
  }

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
  update_link(link, pty.path);

  int control_fd = -1, control_keep = -1;
  if (!control.empty()) {
    ::unlink(control.c_str());
    if (::mkfifo(control.c_str(), 0600) != 0) {
      std::fprintf(stderr, "alex-sim: cannot create %s: %s\n", control.c_str(),
                   std::strerror(errno));
      return 1;
    }
    control_fd = ::open(control.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    control_keep =
        ::open(control.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // no EOF between writers
  }

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

  std::int64_t vanish_at = vanish_after > 0 ? mono_ms() + vanish_after : 0;
  std::int64_t reappear_at = 0;
  std::string control_buf;

  auto vanish = [&](int ms) {
    event("vanish for " + std::to_string(ms) + " ms");
    close_pty(pty);
    fw.reset_receiver();
    to_host.bytes.clear();
    from_host.bytes.clear();
    reappear_at = mono_ms() + ms;
  };

  auto obey = [&](const std::string& line) {
    std::istringstream in(line);
    std::string cmd, arg;
    in >> cmd >> arg;
    int n = 0;
    try {
      n = arg.empty() ? 0 : std::stoi(arg);
    } catch (const std::exception&) {
      n = 0;
    }
    if (cmd == "drop")
      fw.faults().drop_next = n;
    else if (cmd == "corrupt")
      fw.faults().corrupt_next = n;
    else if (cmd == "garbage")
      fw.send_garbage(n);
    else if (cmd == "rxgarbage") {
      // Stray bytes arriving at the Arduino (noise, a host bug).
      std::vector<std::uint8_t> junk(static_cast<std::size_t>(std::max(0, n)), 0x55);
      from_host.push(junk, mono_ms());
      event("fault rxgarbage " + std::to_string(n) + " bytes");
      return;
    } else if (cmd == "delay")
      delay_ms = n;
    else if (cmd == "vanish") {
      if (pty.master >= 0) vanish(n > 0 ? n : 1000);
      return;
    } else if (cmd == "strict")
      fw.set_strict(arg == "on");
    else if (cmd == "hello") {
      HelloMode m;
      if (parse_hello_mode(arg, m)) fw.set_hello(m);
    } else {
      event("control: unknown command '" + line + "'");
      return;
    }
    event("control " + line);
  };

  std::uint8_t buf[4096];
  while (!g_stop) {
    const std::int64_t now = mono_ms();
    if (pty.master < 0) {
      if (now >= reappear_at) {
        if (!open_pty(pty, err)) {
          std::fprintf(stderr, "alex-sim: %s\n", err.c_str());
          return 1;
        }
        update_link(link, pty.path);
        event("reappear device " + pty.path);
      }
    } else if (vanish_at > 0 && now >= vanish_at) {
      vanish_at = 0;
      vanish(vanish_for);
    }
    pollfd fds[2];
    nfds_t nfds = 0;
    const int master_idx = pty.master >= 0 ? static_cast<int>(nfds) : -1;
    if (pty.master >= 0) fds[nfds++] = pollfd{pty.master, POLLIN, 0};
    const int control_idx = control_fd >= 0 ? static_cast<int>(nfds) : -1;
    if (control_fd >= 0) fds[nfds++] = pollfd{control_fd, POLLIN, 0};
    const bool busy = !to_host.bytes.empty() || !from_host.bytes.empty() || fw.moving();
    ::poll(fds, nfds, busy ? 1 : 20);

    if (master_idx >= 0 && (fds[master_idx].revents & POLLIN)) {
      const ssize_t n = ::read(pty.master, buf, sizeof buf);
      if (n > 0) from_host.push(std::vector<std::uint8_t>(buf, buf + n), mono_ms());
    }
    if (control_idx >= 0 && (fds[control_idx].revents & POLLIN)) {
      const ssize_t n = ::read(control_fd, buf, sizeof buf);
      if (n > 0)
        control_buf.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = control_buf.find('\n')) != std::string::npos) {
        std::string line = control_buf.substr(0, nl);
        control_buf.erase(0, nl + 1);
        if (!line.empty()) obey(line);
      }
    }
    const std::int64_t t = mono_ms();
    auto in = from_host.take(t);
    if (!in.empty()) fw.receive(in.data(), in.size(), t);
    fw.tick(t);
    if (pty.master >= 0) {
      auto out = to_host.take(t);
      std::size_t off = 0;
      while (off < out.size()) {
        const ssize_t w = ::write(pty.master, out.data() + off, out.size() - off);
        if (w > 0) {
          off += static_cast<std::size_t>(w);
        } else if (w < 0 && errno == EAGAIN) {
          pollfd p{pty.master, POLLOUT, 0};
          ::poll(&p, 1, 10);
        } else {
          break;
        }
      }
    }
  }
  event("exit");
  close_pty(pty);
  if (!link.empty()) ::unlink(link.c_str());
  if (control_fd >= 0) {
    ::close(control_fd);
    ::close(control_keep);
    ::unlink(control.c_str());
  }
  return 0;
}
