// What the benchmark programs that measure curvebus through its public
// client library share: where a client connects and how it does.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "curvebus/client.hpp"

namespace bench_client {

// A broker and the identity to use with it (the CLI's settings).
struct Where {
  std::string endpoint, home, server_key, key;
};

// A connected client named `name`, or null with the reason on stderr.
inline std::unique_ptr<curvebus::Client> connect_client(const Where& w, const std::string& name) {
  curvebus::ClientSettings settings;
  settings.endpoint = w.endpoint;
  settings.home = w.home;
  settings.server_key = w.server_key;
  settings.key = w.key;
  auto opts = curvebus::resolve_client_options(settings);
  if (!opts) {
    std::fprintf(stderr, "bench: %s\n", opts.status().message().c_str());
    return nullptr;
  }
  opts->client_name = name;
  auto c = std::make_unique<curvebus::Client>(*opts);
  const curvebus::Status s = c->connect(std::chrono::seconds(10));
  if (!s) {
    std::fprintf(stderr, "bench: %s: connect: %s\n", name.c_str(), s.message().c_str());
    return nullptr;
  }
  return c;
}

}  // namespace bench_client
