// curvebus-robot-agent: drives one Alex Arduino from robot/<id>/cmd.
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <set>
#include <vector>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "agent.hpp"
#include "config.hpp"

namespace {
curvebus::agent::Agent* g_agent = nullptr;
extern "C" void on_signal(int) {
  if (g_agent) g_agent->stop();
}
}  // namespace

namespace {
// The value of --config, looked up before the flags are defined so that the
// file's settings become the flags' defaults (and flags override them).
std::string find_config(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) return argv[i + 1];
    if (a.rfind("--config=", 0) == 0) return a.substr(9);
  }
  return "";
}
}  // namespace

int main(int argc, char** argv) {
  using namespace curvebus;
  agent::AgentOptions o;
  const std::string config_file = find_config(argc, argv);
  if (!config_file.empty()) {
    if (Status s = agent::load_agent_config(config_file, o); !s) {
      std::fprintf(stderr, "curvebus-robot-agent: %s\n", s.message().c_str());
      return 1;
    }
  }
  agent::AgentConfig& cfg = o.agent;
  std::string& endpoint = o.endpoint;
  std::string& server_key = o.server_key;
  std::string& key = o.key;
  std::string& home = o.home;
  std::string& log_level = o.log_level;
  CLI::App app{"curvebus-robot-agent: drive an Alex Arduino from curvebus command topics"};
  // A flag given twice: the last one wins (scripts append overrides).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string config_flag;
  app.add_option("--config", config_flag, "TOML file with an [agent] table (flags override it)");
  app.set_version_flag("--version", std::string("curvebus-robot-agent ") + CURVEBUS_VERSION);
  app.add_option("--serial", cfg.link.device, "Serial device of the Arduino")
      ->capture_default_str();
  app.add_option("--robot", cfg.robot_id, "Robot id: topics robot/<id>/cmd|ack|telemetry|status")
      ->capture_default_str();
  app.add_option("--baud", cfg.link.baud,
                 "Serial bit rate (9600 course default, 57600 for 2019 firmware)")
      ->capture_default_str();
  app.add_option("--settle-ms", cfg.link.settle_ms,
                 "Wait after opening the port (a real Uno resets)")
      ->capture_default_str();
  app.add_option("--reply-timeout-ms", cfg.link.reply_timeout_ms,
                 "Arduino answer timeout (0: two frames of line time + 150 ms)")
      ->capture_default_str();
  app.add_option("--retries", cfg.link.retries, "Resends after a timeout")->capture_default_str();
  app.add_option("--deadman-ms", cfg.policy.deadman_ms,
                 "Stop the motors when the controller or the broker link is silent this long")
      ->capture_default_str();
  app.add_option("--max-age-ms", cfg.policy.max_age_ms,
                 "Refuse commands issued longer ago than this")
      ->capture_default_str();
  app.add_option("--telemetry-ms", cfg.telemetry_ms, "Stats poll period (0 = off)")
      ->capture_default_str();
  app.add_option("--status-ms", cfg.status_ms, "Periodic status republish")->capture_default_str();
  app.add_option("--estop-file", cfg.estop_file,
                 "E-stop latch kept across restarts (default <home>/estop-<robot>)");
  app.add_option("--endpoint", endpoint, "Broker endpoint (env CURVEBUS_ENDPOINT)");
  app.add_option("--server-key", server_key,
                 "Broker public key, Z85 or certificate file (env CURVEBUS_SERVER_KEY)");
  app.add_option(
      "--key", key,
      "This agent's secret certificate (env CURVEBUS_KEY; default HOME/keys/alex_secret)");
  app.add_option("--home", home, "curvebus home (env CURVEBUS_HOME, default ./.curvebus)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-file", o.log_file, "Also log to this file");
  CLI11_PARSE(app, argc, argv);

  static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                               "error", "critical", "off"};
  if (!levels.count(log_level)) {
    std::fprintf(stderr,
                 "curvebus-robot-agent: --log-level must be one of "
                 "trace|debug|info|warn|error|critical|off\n");
    return 1;
  }
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stdout_color_sink_mt>()};
  if (!o.log_file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.log_file));
    } catch (const spdlog::spdlog_ex& e) {
      std::fprintf(stderr, "curvebus-robot-agent: cannot open log file %s: %s\n",
                   o.log_file.c_str(), e.what());
      return 1;
    }
  }
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("robot-agent", sinks.begin(), sinks.end()));
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ robot-agent %v");
  spdlog::flush_on(spdlog::level::info);

  if (cfg.estop_file.empty()) {
    std::string h = home;
    if (h.empty()) {
      const char* env = std::getenv("CURVEBUS_HOME");
      h = env && *env ? env : "./.curvebus";
    }
    cfg.estop_file = h + "/estop-" + cfg.robot_id;
  }

  ClientSettings settings;
  settings.endpoint = endpoint;
  settings.server_key = server_key;
  settings.key = key;
  settings.home = home;
  settings.default_key_name = "alex";
  auto options = resolve_client_options(settings);
  if (!options) {
    std::fprintf(stderr, "curvebus-robot-agent: %s\n", options.status().message().c_str());
    return 1;
  }
  cfg.client = options.value();

  agent::Agent agent(cfg);
  g_agent = &agent;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int rc = agent.run();
  g_agent = nullptr;
  if (rc == 2) std::fprintf(stderr, "curvebus-robot-agent: cannot reach the broker (see log)\n");
  return rc;
}
