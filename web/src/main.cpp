// curvebus-web: parse the command line, set up logging, serve until SIGINT
// or SIGTERM (then close every connection, WebSockets with 1001).
#include <sys/resource.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "options.hpp"
#include "server.hpp"

int main(int argc, char** argv) {
  using namespace curvebus::web;
  const std::vector<std::string> args(argv, argv + argc);
  CommandLine cl = parse_command_line(args);
  if (cl.exit_code >= 0) {
    std::fprintf(cl.exit_code == 0 ? stdout : stderr, "%s\n", cl.output.c_str());
    return cl.exit_code;
  }

  auto logger = std::make_shared<spdlog::logger>("curvebus-web",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(cl.options.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);

  // Two descriptors per relay: allow as many as the hard limit permits.
  struct rlimit files {};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  std::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context ioc{1};
  Server server(ioc, std::move(cl.options));
  if (auto s = server.start(); !s) {
    std::fprintf(stderr, "curvebus-web: %s\n", s.message().c_str());
    return 1;
  }
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    server.stop();
  });
  ioc.run();
  spdlog::info("curvebus-web stopped");
  return 0;
}
