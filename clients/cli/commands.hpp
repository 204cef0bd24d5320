// Shared pieces of the `curvebus` subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <memory>
#include <string>

#include "curvebus/client.hpp"

namespace curvebus::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;     // bad flags, unreadable key, bad JSON
inline constexpr int kExitNoBroker = 2;  // no broker, key refused, no answer
inline constexpr int kExitTimeout = 3;   // sub: nothing (or too little) in time
inline constexpr int kExitNotFound = 4;  // pull: nothing kept
inline constexpr int kExitRefused = 5;   // the broker refused: ACL, topic, size, not admin

struct Connection {
  ClientSettings settings;
  double connect_timeout_s = 5;
};

extern std::atomic<bool> g_interrupted;

int fail(int code, const std::string& message);
int fail(const Status& s);
int exit_code_for(const Status& s);
Result<std::unique_ptr<Client>> connect_client(const Connection& conn);

struct TeleopOptions {
  std::string robot = "alex";
  unsigned distance_cm = 10;
  unsigned angle_deg = 15;
  unsigned speed_pct = 60;
  int keepalive_ms = 150;
};
void add_teleop_options(CLI::App* app, TeleopOptions& o);
int run_teleop(const Connection& conn, const TeleopOptions& o);

}  // namespace curvebus::cli
