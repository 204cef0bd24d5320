#include "accept_registry.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxDescriptors = 200000;
constexpr std::size_t kMaxPerDescriptor = 16;

struct Accepted {
  int listen_fd;
  std::string address;
};

std::mutex g_mu;
std::unordered_map<int, std::deque<Accepted>> g_accepted;  // by accepted descriptor, oldest first
std::atomic<bool> g_active{false};

std::string format(const sockaddr* a, socklen_t len) {
  char host[INET6_ADDRSTRLEN] = {};
  if (a->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (a->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "";
}

void record(int listen_fd, int fd, const sockaddr* a, socklen_t len) {
  g_active.store(true, std::memory_order_relaxed);
  std::string address = format(a, len);
  if (address.empty()) return;  // not TCP/IP (ipc://)
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_accepted.size() >= kMaxDescriptors && !g_accepted.count(fd)) return;
  auto& q = g_accepted[fd];
  if (q.size() >= kMaxPerDescriptor) q.pop_front();
  q.push_back(Accepted{listen_fd, std::move(address)});
}

using Accept4 = int (*)(int, sockaddr*, socklen_t*, int);
using Accept = int (*)(int, sockaddr*, socklen_t*);

template <typename F>
F next_symbol(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

int accept_and_record(int fd, sockaddr* addr, socklen_t* len, int flags, bool four) {
  static const Accept4 real4 = next_symbol<Accept4>("accept4");
  static const Accept real = next_symbol<Accept>("accept");
  // libzmq asks for the address; if a caller does not, ask on its behalf.
  sockaddr_storage own{};
  socklen_t own_len = sizeof own;
  sockaddr* a = addr ? addr : reinterpret_cast<sockaddr*>(&own);
  socklen_t* l = addr ? len : &own_len;
  const int r = four ? real4(fd, a, l, flags) : real(fd, a, l);
  if (r >= 0 && l && *l > 0) record(fd, r, a, *l);
  return r;
}

}  // namespace

std::string take_accepted_address(int listen_fd, int fd) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_accepted.find(fd);
  if (it == g_accepted.end()) return "";
  auto& q = it->second;
  for (auto e = q.begin(); e != q.end(); ++e) {
    if (listen_fd >= 0 && e->listen_fd != listen_fd) continue;
    std::string address = std::move(e->address);
    q.erase(e);
    if (q.empty()) g_accepted.erase(it);
    return address;
  }
  return "";
}

bool accept_registry_active() {
  return g_active.load(std::memory_order_relaxed);
}

}  // namespace curvebus::broker

// The interposed C library calls (see accept_registry.hpp).
extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  return curvebus::broker::accept_and_record(fd, addr, len, flags, true);
}

extern "C" int accept(int fd, sockaddr* addr, socklen_t* len) {
  return curvebus::broker::accept_and_record(fd, addr, len, 0, false);
}
