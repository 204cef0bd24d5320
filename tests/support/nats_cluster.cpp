#include "nats_cluster.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace curvebus::test {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kReadyTimeout = std::chrono::seconds(30);

// A connected TCP socket to 127.0.0.1:port, or -1.
int connect_local(int port, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string tail(const std::string& text, std::size_t max) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

}  // namespace

int unused_local_port() {
  static std::mutex mutex;
  static std::set<int> handed_out;
  std::lock_guard<std::mutex> lock(mutex);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    if (port > 0 && handed_out.insert(port).second) return port;
  }
  return 0;
}

int http_status(int port, const std::string& path, std::chrono::milliseconds timeout) {
  const int fd = connect_local(port, timeout);
  if (fd < 0) return -1;
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  std::string response;
  char buf[512];
  while (response.find("\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.x NNN reason"
  const auto space = response.find(' ');
  if (space == std::string::npos || response.size() < space + 4) return -1;
  try {
    return std::stoi(response.substr(space + 1, 3));
  } catch (const std::exception&) {
    return -1;
  }
}

namespace nats {

std::string describe(natsStatus s, jsErrCode code) {
  std::string text = natsStatus_GetText(s);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail && *detail) text += ": " + std::string(detail);
  return text;
}

Connection connect(const std::string& urls, std::string* error) {
  // natsOptions_SetURL takes ONE url; a list goes through SetServers.
  std::vector<std::string> list;
  std::stringstream in(urls);
  for (std::string url; std::getline(in, url, ',');) {
    if (!url.empty()) list.push_back(url);
  }
  std::vector<const char*> servers;
  for (const auto& url : list) servers.push_back(url.c_str());
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) {
    s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
  }
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(opts, true);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  natsConnection* nc = nullptr;
  if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK && error) *error = "connect " + urls + ": " + describe(s);
  natsOptions_Destroy(opts);
  return Connection(s == NATS_OK ? nc : nullptr);
}

Js jetstream(natsConnection* nc, std::chrono::milliseconds wait) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = static_cast<int64_t>(wait.count());
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, nc, &opts) != NATS_OK) return Js();
  return Js(js);
}

}  // namespace nats

NatsCluster::NatsCluster(std::string server_bin)
    : server_bin_(std::move(server_bin)), dir_("curvebus-nats") {}

NatsCluster::~NatsCluster() {
  stop();
}

std::string NatsCluster::url(int i) const {
  return "nats://127.0.0.1:" + std::to_string(nodes_.at(static_cast<std::size_t>(i)).client_port);
}

std::string NatsCluster::urls() const {
  return urls_except(-1);
}

std::string NatsCluster::urls_except(int except) const {
  std::string all;
  for (int i = 0; i < size(); ++i) {
    if (i == except) continue;
    if (!all.empty()) all += ",";
    all += url(i);
  }
  return all;
}

std::string NatsCluster::server_name(int i) const {
  return nodes_.at(static_cast<std::size_t>(i)).name;
}

int NatsCluster::index_of(const std::string& name) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[static_cast<std::size_t>(i)].name == name) return i;
  }
  return -1;
}

int NatsCluster::client_port(int i) const {
  return nodes_.at(static_cast<std::size_t>(i)).client_port;
}

int NatsCluster::monitor_port(int i) const {
  return nodes_.at(static_cast<std::size_t>(i)).monitor_port;
}

bool NatsCluster::running(int i) {
  auto& node = nodes_.at(static_cast<std::size_t>(i));
  return node.process && node.process->running();
}

std::string NatsCluster::log(int i) const {
  const auto& node = nodes_.at(static_cast<std::size_t>(i));
  return node.process ? node.process->err() : std::string();
}

void NatsCluster::write_config(int i) {
  Node& node = nodes_[static_cast<std::size_t>(i)];
  std::ostringstream c;
  c << "# generated by the curvebus federation tests\n"
    << "server_name: " << node.name << "\n"
    << "host: 127.0.0.1\n"
    << "port: " << node.client_port << "\n"
    << "http: \"127.0.0.1:" << node.monitor_port << "\"\n"
    << "jetstream {\n"
    << "  store_dir: \"" << node.store << "\"\n"
    << "  max_memory_store: 268435456\n"
    << "  max_file_store: 1073741824\n"
    << "}\n";
  if (size() > 1) {
    c << "cluster {\n"
      << "  name: curvebus-test\n"
      << "  listen: \"127.0.0.1:" << node.cluster_port << "\"\n"
      << "  routes: [\n";
    for (int j = 0; j < size(); ++j) {
      if (j == i) continue;
      c << "    \"nats-route://127.0.0.1:" << nodes_[static_cast<std::size_t>(j)].cluster_port
        << "\"\n";
    }
    c << "  ]\n"
      << "}\n";
  }
  std::ofstream(node.config) << c.str();
}

void NatsCluster::spawn(int i) {
  Node& node = nodes_[static_cast<std::size_t>(i)];
  node.runs++;
  const std::string prefix = dir_ / (node.name + "-run" + std::to_string(node.runs));
  node.process =
      std::make_unique<Process>(std::vector<std::string>{server_bin_, "-c", node.config}, prefix);
}

bool NatsCluster::fail(int i, const std::string& why) {
  error_ = why;
  if (i >= 0 && i < size()) {
    error_ += "\n--- " + server_name(i) + " log (tail) ---\n" + tail(log(i), 3000);
  }
  return false;
}

bool NatsCluster::wait_accepting(int i, Clock::time_point deadline) {
  const int port = client_port(i);
  while (Clock::now() < deadline) {
    if (!running(i)) return fail(i, server_name(i) + " exited");
    const int fd = connect_local(port, std::chrono::milliseconds(500));
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fail(i, server_name(i) + " does not accept connections on " + url(i));
}

bool NatsCluster::wait_healthy(int i, Clock::time_point deadline) {
  int status = -1;
  while (Clock::now() < deadline) {
    if (!running(i)) return fail(i, server_name(i) + " exited");
    status = http_status(monitor_port(i), "/healthz", std::chrono::milliseconds(1000));
    if (status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return fail(i, server_name(i) + " /healthz still answers " + std::to_string(status));
}

bool NatsCluster::wait_jetstream_placement(int i, Clock::time_point deadline) {
  std::string why;
  nats::Connection nc = nats::connect(url(i), &why);
  if (!nc) return fail(i, why);
  nats::Js js = nats::jetstream(nc.get(), std::chrono::milliseconds(2000));
  if (!js) return fail(i, "no JetStream context");
  const std::string name = "CURVEBUS_READY_" + server_name(i);
  const std::string subject = "curvebus-ready." + server_name(i);
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = size();
  cfg.Storage = js_FileStorage;
  while (Clock::now() < deadline) {
    if (!running(i)) return fail(i, server_name(i) + " exited");
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_AddStream(nullptr, js.get(), &cfg, nullptr, &code);
    if (s == NATS_OK || code == JSStreamNameExistErr) {
      // Deleting may time out while the new stream's group settles; the
      // stream is throwaway either way, so only the creation counts.
      for (int attempt = 0; attempt < 10; ++attempt) {
        jsErrCode del_code = static_cast<jsErrCode>(0);
        if (js_DeleteStream(js.get(), name.c_str(), nullptr, &del_code) == NATS_OK ||
            del_code == JSStreamNotFoundErr) {
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      return true;
    }
    why = nats::describe(s, code);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return fail(i, "JetStream cannot place an R" + std::to_string(size()) + " stream through " +
                     server_name(i) + ": " + why);
}

bool NatsCluster::start(int n) {
  error_.clear();
  if (n < 1 || !nodes_.empty()) return fail(-1, "start(n) needs n >= 1 and is called once");
  // A port found free can be taken by another process before nats-server
  // binds it: then the whole cluster starts again on new ports (every
  // config names every other node's route port).
  for (int attempt = 1;; ++attempt) {
    if (start_once(n)) return true;
    bool port_taken = false;
    for (int i = 0; i < size(); ++i) {
      if (log(i).find("address already in use") != std::string::npos) port_taken = true;
    }
    if (!port_taken || attempt == 3) return false;
    stop();
    nodes_.clear();
  }
}

bool NatsCluster::start_once(int n) {
  error_.clear();
  nodes_.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    Node& node = nodes_[static_cast<std::size_t>(i)];
    node.name = "n" + std::to_string(i);
    node.client_port = unused_local_port();
    node.cluster_port = unused_local_port();
    node.monitor_port = unused_local_port();
    if (node.client_port == 0 || node.cluster_port == 0 || node.monitor_port == 0) {
      return fail(-1, "no free port on 127.0.0.1");
    }
    node.config = dir_ / (node.name + ".conf");
    node.store = dir_ / (node.name + "-store");
    std::error_code ec;
    std::filesystem::remove_all(node.store, ec);
    std::filesystem::create_directories(node.store);
  }
  for (int i = 0; i < n; ++i) write_config(i);
  for (int i = 0; i < n; ++i) spawn(i);
  const auto deadline = Clock::now() + kReadyTimeout;
  for (int i = 0; i < n; ++i) {
    if (!wait_accepting(i, deadline)) return false;
  }
  for (int i = 0; i < n; ++i) {
    if (!wait_jetstream_placement(i, deadline)) return false;
  }
  for (int i = 0; i < n; ++i) {
    if (!wait_healthy(i, deadline)) return false;
  }
  return true;
}

void NatsCluster::kill(int i, int sig) {
  auto& node = nodes_.at(static_cast<std::size_t>(i));
  if (!node.process) return;
  node.process->signal(sig);
  if (node.process->wait(std::chrono::milliseconds(10000)) == -1) node.process->stop();
}

bool NatsCluster::restart(int i) {
  return restart_nodes({i}, true);
}

bool NatsCluster::restart(const std::vector<int>& nodes) {
  return restart_nodes(nodes, false);
}

bool NatsCluster::restart_nodes(const std::vector<int>& nodes, bool healthy) {
  error_.clear();
  for (int i : nodes) {
    auto& node = nodes_.at(static_cast<std::size_t>(i));
    if (node.process && node.process->running()) node.process->stop();
    spawn(i);
  }
  const auto deadline = Clock::now() + kReadyTimeout;
  for (int i : nodes)
    if (!wait_accepting(i, deadline) || (healthy && !wait_healthy(i, deadline))) return false;
  for (int i : nodes) {
    // It serves JetStream API requests again (answered through the meta leader).
    std::string why;
    nats::Connection nc = nats::connect(url(i), &why);
    if (!nc) return fail(i, why);
    nats::Js js = nats::jetstream(nc.get(), std::chrono::milliseconds(2000));
    if (!js) return fail(i, "no JetStream context");
    bool ok = false;
    while (!ok && Clock::now() < deadline) {
      jsAccountInfo* info = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      const natsStatus s = js_GetAccountInfo(&info, js.get(), nullptr, &code);
      if (s == NATS_OK) {
        jsAccountInfo_Destroy(info);
        ok = true;
        break;
      }
      why = nats::describe(s, code);
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    if (!ok) return fail(i, "JetStream API through restarted " + server_name(i) + ": " + why);
  }
  return true;
}

void NatsCluster::stop() {
  for (auto& node : nodes_) {
    if (node.process && node.process->running()) node.process->signal(SIGTERM);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& node : nodes_) {
    if (!node.process) continue;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (node.process->wait(std::max(left, std::chrono::milliseconds(1))) == -1) {
      node.process->signal(SIGKILL);
      node.process->wait(std::chrono::milliseconds(5000));
    }
  }
}

}  // namespace curvebus::test
