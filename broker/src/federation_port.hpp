// FederationPort: all the routing core knows of federation (docs/federation.md).
//
// The core calls exported() once for every publication it accepted from a
// local peer or published itself ($SYS), never for one it imported: the one
// export hook.  What comes in from other brokers enters through
// Protocol::import_publication() (the one import entry point), and the
// outcome of a command's store through Protocol::federation_stored().  The
// implementation over NATS is Federation (federation.hpp); tests use their own.
//
// Thread: every call from the routing thread.  exported() must not block: it
// copies what it needs and returns.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace curvebus::broker {

// A publication accepted here, as the export hook sees it.
struct ExportedPublication {
  std::string_view topic;
  std::string_view payload;
  std::string_view publisher;  // the local allow-list name ("$SYS" for the broker's own)
  std::string_view content_type;
  bool retain = false;
  std::uint64_t seq = 0;  // the topic's local sequence number
  std::int64_t publish_time_us = 0;
};

// What came in from another broker, checked (sealed, signed, allowed,
// fresh), for local delivery.
struct ImportedPublication {
  std::string topic;      // the local topic ($SYS/... of a peer: $SYS/federation/<site>/...)
  std::string publisher;  // "<site>/<name>"
  std::string payload;
  std::string content_type;
  bool retain = false;
  bool command = false;
  std::uint64_t handle = 0;  // for a command: what import_done() answers about
};

class FederationPort {
 public:
  enum class Export {
    kLocal,        // not exported (no export pattern matches)
    kSent,         // handed to the backbone (streams: at most once)
    kAwaitStore,   // a command: the publisher's PUBACK waits for federation_stored(token)
    kUnavailable,  // a command that cannot be stored now: answer FEDERATION_UNAVAILABLE
  };
  virtual ~FederationPort() = default;
  // `token` names the command for federation_stored() when kAwaitStore.
  virtual Export exported(const ExportedPublication& p, std::uint64_t token) = 0;
  // A command given to import_publication() reached `delivered` local
  // subscribers: the backbone may forget it (or keep it for later when 0).
  virtual void import_done(std::uint64_t handle, std::uint32_t delivered) = 0;
};

}  // namespace curvebus::broker
