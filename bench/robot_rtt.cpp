// curvebus-bench-robot: the robot command round trip, as a controller sees
// it: publish a Command on robot/<id>/cmd, wait for its CommandResult on
// robot/<id>/ack.  One command outstanding at a time (the Alex protocol has
// no ids, so the agent keeps one outstanding too).  Prints percentiles of the
// round trip and of the agent's own share (latency_us in the ack: agent
// receive -> Arduino answer), so broker + client overhead is their difference.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

#include "curvebus/client.hpp"
#include "curvebus/codec.hpp"
#include "robot.pb.h"

namespace {

using namespace curvebus;
namespace rv1 = ::curvebus::robot::v1;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  ClientSettings settings;
  std::string robot = "alex", command = "stats";
  int count = 500, warmup = 20;
  CLI::App app{"curvebus-bench-robot: command publish -> ack round trip through the robot agent"};
  app.add_option("--endpoint", settings.endpoint);
  app.add_option("--server-key", settings.server_key);
  app.add_option("--key", settings.key);
  app.add_option("--home", settings.home);
  app.add_option("--robot", robot)->capture_default_str();
  app.add_option("--command", command, "stats | stop")->capture_default_str();
  app.add_option("--count", count)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto options = resolve_client_options(settings);
  if (!options) {
    std::fprintf(stderr, "bench: %s\n", options.status().message().c_str());
    return 1;
  }
  Client client(*options);
  if (Status s = client.connect(std::chrono::milliseconds(5000)); !s) {
    std::fprintf(stderr, "bench: %s\n", s.message().c_str());
    return 2;
  }
  std::mutex mutex;
  std::condition_variable cv;
  std::string want;
  rv1::CommandResult got;
  bool have = false;
  Status s = client.subscribe({"robot/" + robot + "/ack"}, [&](const Message& m) {
    rv1::CommandResult r;
    if (!r.ParseFromString(m.payload)) return;
    std::lock_guard<std::mutex> lock(mutex);
    if (r.id() != want) return;
    got = r;
    have = true;
    cv.notify_all();
  });
  if (!s) {
    std::fprintf(stderr, "bench: %s\n", s.message().c_str());
    return 2;
  }
  const std::string topic = "robot/" + robot + "/cmd";
  const std::string prefix = "rtt-" + std::to_string(::getpid()) + "-";
  std::vector<double> rtt_us, agent_us;
  int failures = 0;
  std::map<std::string, int> failed_by;
  for (int i = 0; i < warmup + count; ++i) {
    rv1::Command c;
    c.set_id(prefix + std::to_string(i));
    if (command == "stop") c.mutable_stop();
    else c.mutable_get_stats();
    {
      std::lock_guard<std::mutex> lock(mutex);
      want = c.id();
      have = false;
    }
    const auto t0 = std::chrono::steady_clock::now();
    c.set_issued_us(wall_clock_us());
    client.publish(topic, c.SerializeAsString());
    std::unique_lock<std::mutex> lock(mutex);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return have; })) {
      ++failures;
      continue;
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (got.status() != rv1::RESULT_OK) {
      ++failures;
      ++failed_by[rv1::ResultStatus_Name(got.status())];
      continue;
    }
    if (i < warmup) continue;
    rtt_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    agent_us.push_back(got.latency_us());
  }
  std::vector<double> overhead;
  for (std::size_t i = 0; i < rtt_us.size(); ++i) overhead.push_back(rtt_us[i] - agent_us[i]);
  auto row = [](const char* what, const std::vector<double>& v) {
    std::printf("%-28s p50 %8.0f us  p90 %8.0f us  p99 %8.0f us  max %8.0f us\n", what, percentile(v, 50),
                percentile(v, 90), percentile(v, 99), v.empty() ? 0 : *std::max_element(v.begin(), v.end()));
  };
  std::printf("command=%s count=%zu failures=%d\n", command.c_str(), rtt_us.size(), failures);
  for (const auto& [status, n] : failed_by) std::printf("  %s: %d\n", status.c_str(), n);
  row("round trip (publish->ack)", rtt_us);
  row("agent (receive->answer)", agent_us);
  row("broker+client (difference)", overhead);
  client.close();
  return failures ? 3 : 0;
}
