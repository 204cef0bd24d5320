#include "curvebus/status.hpp"

#include <array>
#include <utility>

namespace curvebus {

namespace {

constexpr std::array<std::pair<StatusCode, const char*>, 37> kNames{{
    {StatusCode::kOk, "OK"},
    {StatusCode::kError, "ERROR"},
    {StatusCode::kUsage, "USAGE"},
    {StatusCode::kIo, "IO"},
    {StatusCode::kConfig, "CONFIG"},
    {StatusCode::kKeys, "KEYS"},
    {StatusCode::kInsecure, "INSECURE"},
    {StatusCode::kBind, "BIND"},
    {StatusCode::kInvalid, "INVALID"},
    {StatusCode::kExists, "EXISTS"},
    {StatusCode::kState, "STATE"},
    {StatusCode::kTimeout, "TIMEOUT"},
    {StatusCode::kNoBroker, "NO_BROKER"},
    {StatusCode::kRefused, "REFUSED"},
    {StatusCode::kClosed, "CLOSED"},
    {StatusCode::kQueueFull, "QUEUE_FULL"},
    {StatusCode::kMalformed, "MALFORMED"},
    {StatusCode::kNotRegistered, "NOT_REGISTERED"},
    {StatusCode::kDenied, "DENIED"},
    {StatusCode::kTooLarge, "TOO_LARGE"},
    {StatusCode::kInvalidTopic, "INVALID_TOPIC"},
    {StatusCode::kTooManySubscriptions, "TOO_MANY_SUBSCRIPTIONS"},
    {StatusCode::kRateLimited, "RATE_LIMITED"},
    {StatusCode::kNotFound, "NOT_FOUND"},
    {StatusCode::kRevoked, "REVOKED"},
    {StatusCode::kKicked, "KICKED"},
    {StatusCode::kNotAdmin, "NOT_ADMIN"},
    {StatusCode::kUnsupported, "UNSUPPORTED"},
    {StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED"},
    {StatusCode::kInternal, "INTERNAL"},
    {StatusCode::kAlreadyRegistered, "ALREADY_REGISTERED"},
    {StatusCode::kSessionExpired, "SESSION_EXPIRED"},
    {StatusCode::kIdentity, "IDENTITY"},
    {StatusCode::kKeyExpired, "KEY_EXPIRED"},
    {StatusCode::kBusy, "BUSY"},
    {StatusCode::kQuota, "QUOTA"},
    {StatusCode::kFederationUnavailable, "FEDERATION_UNAVAILABLE"},
}};

}  // namespace

const char* status_code_name(StatusCode code) {
  for (const auto& [c, name] : kNames)
    if (c == code) return name;
  return "ERROR";
}

StatusCode status_code_from_name(std::string_view name) {
  for (const auto& [c, n] : kNames)
    if (name == n) return c;
  return StatusCode::kError;
}

}  // namespace curvebus
