// Errors as values: a Status is ok or carries one human-readable line;
// Result<T> is a value or a Status.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace curvebus {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message, std::string code = "ERROR") {
    Status s;
    s.ok_ = false;
    s.code_ = std::move(code);
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  // Short machine-readable code, e.g. "DENIED", "TIMEOUT", "NOT_FOUND", "IO".
  const std::string& code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  bool ok_ = true;
  std::string code_;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
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
