// Status codes: the enum programs compare and the names people read.
#include <catch2/catch.hpp>

#include "curvebus/codec.hpp"
#include "curvebus/status.hpp"

TEST_CASE("status codes: every name maps back to its code, the broker's error names included",
          "[status]") {
  for (int i = static_cast<int>(curvebus::StatusCode::kOk);
       i <= static_cast<int>(curvebus::StatusCode::kFederationUnavailable); ++i) {
    const auto code = static_cast<curvebus::StatusCode>(i);
    CHECK(curvebus::status_code_from_name(curvebus::status_code_name(code)) == code);
  }
  for (int e = curvebus::v1::ErrorCode_MIN + 1; e <= curvebus::v1::ErrorCode_MAX; ++e) {
    const auto name = curvebus::error_code_name(static_cast<curvebus::v1::ErrorCode>(e));
    INFO(name);
    CHECK(curvebus::status_code_from_name(name) != curvebus::StatusCode::kError);
    const auto s = curvebus::Status::Error("refused", name);
    CHECK(s.code() == name);
    CHECK(curvebus::status_code_name(s.status_code()) == name);
  }
  const auto unknown = curvebus::Status::Error("x", "SOMETHING_NEW");
  CHECK(unknown.code() == "SOMETHING_NEW");
  CHECK(unknown.is(curvebus::StatusCode::kError));
  CHECK(curvebus::Status::Error("x", curvebus::StatusCode::kNoBroker).code() == "NO_BROKER");
  CHECK(curvebus::Status::Ok().is(curvebus::StatusCode::kOk));
}
