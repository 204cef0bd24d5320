// curvebus-bench-attacks: what a legitimate client sees while one peer holding
// a legitimate key ("alex", allowed robot/alex/...) attacks the broker's
// resources (issue 10).  bench/run-attacks starts a fresh broker per attack
// and calls this program twice:
//
//   curvebus-bench-attacks --setup DIR
//       Writes DIR/keys (the broker's key pair, "probe" and "alex") and
//       DIR/acl.toml in a format every curvebus-broker reads, old and new.
//   curvebus-bench-attacks --attack NAME --dir DIR --broker-pid PID [--seconds S]
//       Connects to the endpoint in DIR/endpoint, starts the probe (one
//       publication every --period-ms from one "probe" session to another,
//       round trip measured), runs the attack for the rest of the --seconds,
//       stops the probe (3 s grace for late deliveries) and prints one
//       markdown row: attack, probe p50/p99/max in ms, lost/sent, the
//       broker's peak RSS (VmHWM) and what the attacker got back.
//       --attacker-nice N lowers the attacking thread's priority once the
//       probe runs: on one 2-core machine the attacker would otherwise also
//       steal the probe's CPU, which a remote attacker cannot.
//
// Attacks (attacker.hpp builds the raw frames; nothing uses the client library):
//   topics-frame    2,000 topics of its own, then ONE 48 KB frame of 12,000 TOPICS ops
//   retained-fsync  16 KiB retained values, 500 a second over 2,000 topics (the script
//                   runs the broker with every fsync slowed to 2 s)
//   memory-growth   256 KiB publications on ever new topics, 15 MiB a second
//   session-flood   100 new connections a second, each registering (up to 1,000)
//   publish-flood   64-byte publications in frames of 200, as fast as the socket takes them
//
// Only 127.0.0.1.  Timing figures are measurements, not pass/fail.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "attacker.hpp"
#include "curvebus/certificate.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::hostile;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The first line of a file ("" if unreadable).
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

int setup(const std::string& dir) {
  const KeyPair broker = generate_keypair();
  if (Status s = write_certificate(dir + "/keys", "broker", broker, true); !s) {
    std::fprintf(stderr, "curvebus-bench-attacks: %s\n", s.message().c_str());
    return 1;
  }
  std::string acl;
  struct Client {
    const char* name;
    const char* role;
    const char* publish;
    const char* subscribe;
  };
  for (const Client& c : {Client{"probe", "client", "probe/#", "probe/#"},
                          Client{"alex", "agent", "robot/{name}/#", "robot/{name}/cmd"}}) {
    const KeyPair k = generate_keypair();
    if (Status s = write_certificate(dir + "/keys", c.name, k, true); !s) {
      std::fprintf(stderr, "curvebus-bench-attacks: %s\n", s.message().c_str());
      return 1;
    }
    acl += std::string("[[client]]\nname = \"") + c.name + "\"\npublic_key = \"" + k.public_key +
           "\"\nrole = \"" + c.role + "\"\nadmin = false\npublish = [\"" + c.publish +
           "\"]\nsubscribe = [\"" + c.subscribe + "\"]\n\n";
  }
  std::ofstream(dir + "/acl.toml") << acl;
  return 0;
}

// Reads every op that has arrived and counts the errors by code.
struct Tally {
  std::uint64_t ops = 0, busy = 0, quota = 0, rate_limited = 0, exhausted = 0, other_errors = 0;
  void take(RawPeer& peer) {
    peer.read_available();
    for (const auto& op : peer.queued()) {
      ++ops;
      if (!op.has_error()) continue;
      switch (op.error().code()) {
        case v1::ERROR_BUSY:
          busy += std::max<std::uint64_t>(1, op.error().count());
          break;
        case v1::ERROR_QUOTA:
          quota += std::max<std::uint64_t>(1, op.error().count());
          break;
        case v1::ERROR_RATE_LIMITED:
          rate_limited += std::max<std::uint64_t>(1, op.error().count());
          break;
        case v1::ERROR_RESOURCE_EXHAUSTED:
          ++exhausted;
          break;
        default:
          ++other_errors;
      }
    }
    peer.clear_queue();
  }
};

struct Attack {
  zmq::context_t& ctx;
  BrokerAddress broker;
  KeyPair alex;
  Clock::time_point end;
};

std::unique_ptr<RawPeer> registered(const Attack& a) {
  auto peer = std::make_unique<RawPeer>(a.ctx, a.broker, a.alex);
  auto r = peer->register_wait(v1::ROLE_AGENT, 60000, {}, 10000ms);
  if (!r || !r->has_registered()) throw std::runtime_error("the attacker could not register");
  return peer;
}

void keep_reading(RawPeer& peer, Tally& t, Clock::time_point until) {
  while (Clock::now() < until) {
    zmq::pollitem_t item{peer.socket().handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 50ms);
    t.take(peer);
  }
}

// Setup that must happen before the probe starts (e.g. topics to list).
void prepare(const std::string& name, const Attack& a, std::unique_ptr<RawPeer>& alex) {
  alex = registered(a);
  if (name == "topics-frame") {
    alex->send_frame(publish_batch_frame(
        [](std::size_t i) { return "robot/alex/t/" + std::to_string(i); }, 0, 2000, "x"));
    // The last of them answered means all 2,000 exist.
    auto r = alex->publish_wait("robot/alex/t/1999", "x", false, 20000ms);
    if (!r) throw std::runtime_error("topics were not created");
  }
}

std::string run_attack(const std::string& name, const Attack& a, RawPeer& alex) {
  Tally t;
  char note[256] = {};
  if (name == "topics-frame") {
    alex.send_frame(topics_flood_frame(12000));
    std::uint64_t replies = 0;
    while (Clock::now() < a.end) {
      zmq::pollitem_t item{alex.socket().handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 50ms);
      alex.read_available();
      for (const auto& op : alex.queued())
        if (op.has_topics_reply()) ++replies;
      t.take(alex);
    }
    std::snprintf(note, sizeof note, "%llu TOPICS_REPLY, BUSY for %llu",
                  static_cast<unsigned long long>(replies),
                  static_cast<unsigned long long>(t.busy));
  } else if (name == "retained-fsync") {
    const std::string value(16 * 1024, 'r');
    std::size_t next = 0;
    while (Clock::now() < a.end) {
      alex.send_frame(publish_batch_frame(
          [](std::size_t i) { return "robot/alex/r/" + std::to_string(i % 2000); }, next, 25, value,
          true));
      next += 25;
      keep_reading(alex, t, std::min(a.end, Clock::now() + 50ms));
    }
    std::snprintf(note, sizeof note, "%zu retained publications, QUOTA for %llu", next,
                  static_cast<unsigned long long>(t.quota));
  } else if (name == "memory-growth") {
    const std::string blob(256 * 1024, 'm');
    std::size_t next = 0;
    while (Clock::now() < a.end) {
      alex.send_frame(publish_batch_frame(
          [](std::size_t i) { return "robot/alex/m/" + std::to_string(i); }, next, 3, blob));
      next += 3;
      keep_reading(alex, t, std::min(a.end, Clock::now() + 50ms));
    }
    std::snprintf(note, sizeof note, "%zu MiB sent on %zu topics, QUOTA for %llu", next / 4, next,
                  static_cast<unsigned long long>(t.quota));
  } else if (name == "session-flood") {
    std::vector<std::unique_ptr<RawPeer>> peers;
    std::uint64_t registered = 0;
    while (Clock::now() < a.end) {
      const auto tick = Clock::now() + 100ms;
      for (int i = 0; i < 10 && peers.size() < 1000; ++i) {
        peers.push_back(std::make_unique<RawPeer>(a.ctx, a.broker, a.alex));
        peers.back()->send_register(v1::ROLE_AGENT, 60000);
      }
      for (auto& p : peers) {
        p->read_available();
        for (const auto& op : p->queued()) {
          if (op.has_registered()) ++registered;
          if (op.has_error() && op.error().code() == v1::ERROR_RESOURCE_EXHAUSTED) ++t.exhausted;
        }
        p->clear_queue();
      }
      std::this_thread::sleep_until(tick);
    }
    std::snprintf(note, sizeof note, "%zu connections, %llu sessions, %llu RESOURCE_EXHAUSTED",
                  peers.size(), static_cast<unsigned long long>(registered),
                  static_cast<unsigned long long>(t.exhausted));
  } else if (name == "publish-flood") {
    const std::string frame = publish_batch_frame(
        [](std::size_t) { return std::string("robot/alex/flood"); }, 0, 200, "flood-payload-64b");
    std::uint64_t frames = 0;
    while (Clock::now() < a.end) {
      if (alex.send_frame(frame)) ++frames;
      if (frames % 20 == 0) t.take(alex);
    }
    keep_reading(alex, t, Clock::now() + 200ms);
    std::snprintf(note, sizeof note, "%llu publications sent, RATE_LIMITED for %llu",
                  static_cast<unsigned long long>(frames * 200),
                  static_cast<unsigned long long>(t.rate_limited));
  } else {
    throw std::invalid_argument("unknown attack " + name);
  }
  return note;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"curvebus-bench-attacks: a legitimate client's round trip under each attack"};
  std::string setup_dir, attack, dir;
  int broker_pid = 0, seconds = 10, period_ms = 10;
  int attacker_nice = 0;
  bool header = false;
  app.add_option("--setup", setup_dir, "write keys and acl.toml into this directory, then exit");
  app.add_option("--attack", attack,
                 "topics-frame | retained-fsync | memory-growth | session-flood | publish-flood");
  app.add_option("--dir", dir, "the --setup directory of the running broker");
  app.add_option("--broker-pid", broker_pid, "the broker's PID (for its peak RSS)");
  app.add_option("--seconds", seconds, "probe duration, attack included");
  app.add_option("--period-ms", period_ms, "probe period");
  app.add_option("--attacker-nice", attacker_nice,
                 "nice value of the attacking thread (the probe keeps 0): a remote attacker does "
                 "not compete with the probe for this machine's CPU");
  app.add_flag("--header", header, "print the table header first");
  CLI11_PARSE(app, argc, argv);
  if (!setup_dir.empty()) return setup(setup_dir);
  if (header) {
    std::printf(
        "| attack | probe p50 ms | p99 ms | max ms | lost / sent | broker peak RSS MiB | attacker "
        "got |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
  }
  if (attack.empty()) return header ? 0 : 2;

  const std::string endpoint = first_line(dir + "/endpoint");
  auto server = read_certificate(dir + "/keys/broker", false);
  auto probe_keys = read_certificate(dir + "/keys/probe_secret", true);
  auto alex_keys = read_certificate(dir + "/keys/alex_secret", true);
  if (!server || !probe_keys || !alex_keys) {
    std::fprintf(stderr, "curvebus-bench-attacks: cannot read the keys in %s/keys\n", dir.c_str());
    return 1;
  }
  const BrokerAddress broker{endpoint, server->keys.public_key};
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, 4096);
  std::string note;
  ProbeReport report;
  try {
    Attack a{ctx, broker, alex_keys->keys, Clock::time_point{}};
    std::unique_ptr<RawPeer> alex;
    prepare(attack, a, alex);
    LatencyProbe probe(broker, probe_keys->keys, "probe/rtt", std::chrono::milliseconds(period_ms));
    if (!probe.start()) {
      std::fprintf(stderr, "curvebus-bench-attacks: probe did not start: %s\n",
                   probe.stop().problem.c_str());
      return 1;
    }
    const auto start = Clock::now();
    a.end = start + std::chrono::seconds(seconds);
    std::this_thread::sleep_for(1s);  // a calm second first
    if (attacker_nice != 0)
      (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), attacker_nice);
    note = run_attack(attack, a, *alex);
    std::this_thread::sleep_until(a.end);
    report = probe.stop(3000ms);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "curvebus-bench-attacks: %s: %s\n", attack.c_str(), e.what());
    return 1;
  }
  const long hwm_kb = broker_pid > 0 ? proc_status_kb(broker_pid, "VmHWM") : -1;
  std::printf("| %s | %.2f | %.2f | %.1f | %llu / %llu | %.0f | %s |\n", attack.c_str(),
              report.p50_ms, report.p99_ms, report.max_ms,
              static_cast<unsigned long long>(report.lost),
              static_cast<unsigned long long>(report.sent),
              hwm_kb > 0 ? static_cast<double>(hwm_kb) / 1024 : -1.0, note.c_str());
  return 0;
}
