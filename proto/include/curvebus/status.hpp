// Errors as values: a Status is ok or carries a code and one human-readable
// line; Result<T> is a value or a Status.
//
// The code is an enum (StatusCode) that programs compare, and it has a fixed
// upper-case name (code()) that people and scripts read.  The broker's ERROR
// codes (v1::ErrorCode, "DENIED", "RATE_LIMITED", ...) have a StatusCode of
// the same name, so a refusal keeps its meaning from the wire to the CLI's
// exit code.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace curvebus {

enum class StatusCode {
  kOk,
  kError,  // unspecified
  // local
  kUsage,     // bad arguments
  kIo,        // a file or device failed
  kConfig,    // a configuration that does not parse or is inconsistent
  kKeys,      // missing or unreadable keys
  kInsecure,  // a secret key readable by others
  kBind,      // an endpoint could not be bound
  kInvalid,   // a value out of its domain
  kExists,    // would overwrite
  kState,     // not possible in the current state
  // the connection
  kTimeout,    // no answer in time
  kNoBroker,   // no broker reachable (or the link was lost)
  kRefused,    // the broker refused this key in the handshake
  kClosed,     // the client was closed
  kQueueFull,  // the outgoing queue is full
  // the broker's ERROR codes (v1::ErrorCode), same names
  kMalformed,
  kNotRegistered,
  kDenied,
  kTooLarge,
  kInvalidTopic,
  kTooManySubscriptions,
  kRateLimited,
  kNotFound,
  kRevoked,
  kKicked,
  kNotAdmin,
  kUnsupported,
  kResourceExhausted,
  kInternal,
  kAlreadyRegistered,
  kSessionExpired,
  kIdentity,
  kKeyExpired,
  kBusy,
  kQuota,
  kFederationUnavailable,
};

// "OK", "ERROR", "USAGE", "IO", ..., "DENIED", "RATE_LIMITED", ...
const char* status_code_name(StatusCode code);
// The code of a name status_code_name() gives; kError for any other name.
StatusCode status_code_from_name(std::string_view name);

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message, StatusCode code = StatusCode::kError) {
    Status s;
    s.ok_ = false;
    s.code_ = code;
    s.name_ = status_code_name(code);
    s.message_ = std::move(message);
    return s;
  }
  // A code by name (the broker's error_code_name()); unknown names keep their
  // text in code() and compare as StatusCode::kError.
  static Status Error(std::string message, std::string code_name) {
    Status s;
    s.ok_ = false;
    s.code_ = status_code_from_name(code_name);
    s.name_ = std::move(code_name);
    s.message_ = std::move(message);
    return s;
  }
  static Status Error(std::string message, const char* code_name) {
    return Error(std::move(message), std::string(code_name));
  }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  StatusCode status_code() const { return code_; }
  bool is(StatusCode code) const { return code_ == code; }
  // The code's name, e.g. "DENIED", "TIMEOUT", "NOT_FOUND", "IO"; empty when ok.
  const std::string& code() const { return name_; }
  const std::string& message() const { return message_; }

 private:
  bool ok_ = true;
  StatusCode code_ = StatusCode::kOk;
  std::string name_;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace curvebus
