// Which web pages may open a relay: the Origin allow-list.
//
// A browser sends the page's origin with every WebSocket handshake, and a
// page from another site could otherwise use a visitor's browser to reach a
// broker that only the visitor's network can reach.  The relay accepts its
// own origins (scheme://host:port of the address it listens on, the
// localhost forms for a loopback address, the host name and every interface
// address for a wildcard one) and those added with --allow-origin
// ("null" admits pages opened from a file, "*" admits any page).
//
// A handshake without Origin comes from a program, not a browser page (a
// browser always sends one), and cannot be driven by another site: it is
// accepted unless --require-origin.  The allow-list protects browser users
// from other sites; it is not authentication (CURVE is).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace curvebus::web {

class OriginPolicy {
 public:
  OriginPolicy() = default;
  // `host`/`port` as bound (port already resolved when it was 0).
  OriginPolicy(bool tls, const std::string& listen_host, std::uint16_t port,
               const std::vector<std::string>& extra, bool require_origin);

  // `origin` is the header's value, or nullopt when the request had none.
  bool allows(const std::optional<std::string_view>& origin) const;
  const std::set<std::string>& origins() const { return origins_; }

 private:
  std::set<std::string> origins_;  // lower case, no trailing '/'
  bool any_ = false;
  bool require_ = false;
};

}  // namespace curvebus::web
