#include "origin.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace curvebus::web {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string normalize(std::string_view origin) {
  std::string out = lower(origin);
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out;
}

bool is_ipv6(const std::string& host) {
  return host.find(':') != std::string::npos;
}

}  // namespace

OriginPolicy::OriginPolicy(bool tls, const std::string& listen_host, std::uint16_t port,
                           const std::vector<std::string>& extra, bool require_origin)
    : require_(require_origin) {
  const std::string scheme = tls ? "https://" : "http://";
  const bool default_port = port == (tls ? 443 : 80);
  auto add_host = [&](std::string host) {
    if (host.empty()) return;
    if (is_ipv6(host) && host.front() != '[') host = "[" + host + "]";
    origins_.insert(normalize(scheme + host + ":" + std::to_string(port)));
    if (default_port) origins_.insert(normalize(scheme + host));
  };
  auto add_loopback = [&] {
    add_host("127.0.0.1");
    add_host("localhost");
    add_host("::1");
  };
  const std::string h = lower(listen_host);
  if (h == "0.0.0.0" || h == "::" || h == "*" || h.empty()) {
    add_loopback();
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0) add_host(name);
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (ifaddrs* a = list; a; a = a->ifa_next) {
        if (!a->ifa_addr) continue;
        char text[INET6_ADDRSTRLEN] = {};
        if (a->ifa_addr->sa_family == AF_INET) {
          const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
          if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text)) add_host(text);
        } else if (a->ifa_addr->sa_family == AF_INET6) {
          const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
          if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;  // needs a zone id in URLs
          if (::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text)) add_host(text);
        }
      }
      ::freeifaddrs(list);
    }
  } else if (h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0) {
    add_loopback();
    add_host(h);
  } else {
    add_host(h);
  }
  for (const auto& e : extra) {
    if (e == "*")
      any_ = true;
    else
      origins_.insert(normalize(e));
  }
}

bool OriginPolicy::allows(const std::optional<std::string_view>& origin) const {
  if (!origin) return !require_;
  if (any_) return true;
  return origins_.count(normalize(*origin)) > 0;
}

}  // namespace curvebus::web
