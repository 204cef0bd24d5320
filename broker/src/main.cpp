// curvebus-broker: parse the command line, prepare the embedded default,
// run the broker until SIGINT/SIGTERM.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "curvebus/broker/broker.hpp"

namespace {

curvebus::broker::Broker* g_broker = nullptr;

extern "C" void on_signal(int) {
  if (g_broker) g_broker->stop();
}

int fail(const std::string& message) {
  std::fprintf(stderr, "curvebus-broker: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace curvebus::broker;
  const std::vector<std::string> args(argv, argv + argc);
  CommandLine cl = parse_command_line(args);
  if (cl.exit_code >= 0) {
    std::fprintf(cl.exit_code == 0 ? stdout : stderr, "%s\n", cl.output.c_str());
    return cl.exit_code;
  }
  Config config = std::move(cl.config);

  try {
    std::vector<spdlog::sink_ptr> sinks;
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    if (!config.log_file.empty())
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(config.log_file));
    auto logger = std::make_shared<spdlog::logger>("curvebus-broker", sinks.begin(), sinks.end());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(spdlog::level::from_str(config.log_level));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
  } catch (const spdlog::spdlog_ex& e) {
    return fail(std::string("cannot open log file: ") + e.what());
  }

  // One descriptor per peer: allow as many as the hard limit permits.
  struct rlimit files {};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }

  std::vector<std::string> generated;
  if (auto s = prepare_home(config, generated); !s) return fail(s.message());
  for (const auto& line : generated) spdlog::info("embedded default: {}", line);

  Broker broker(config);
  if (auto s = broker.start(); !s) return fail(s.message());
  if (!generated.empty() || args.size() == 1)
    spdlog::info("embedded default: home={} keys={} acl={} endpoint file={}", config.home,
                 config.keys_dir, config.acl_path, config.endpoint_file);

  g_broker = &broker;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  const int rc = broker.run();
  g_broker = nullptr;
  spdlog::info("broker stopped");
  return rc;
}
