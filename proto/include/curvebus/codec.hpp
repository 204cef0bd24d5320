// Frame encoding shared by the broker and the clients.
//
// Every ZeroMQ message of the protocol is one part holding one serialized
// curvebus.v1.Frame (see proto/curvebus.proto).  Encoding an op gives the
// bytes of a Frame holding just that op; because Protobuf appends repeated
// fields when messages are concatenated, a batch is the plain concatenation of
// such encodings (class Outbox, outbox.hpp).  Decoding a batch yields every op in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "curvebus.pb.h"

namespace curvebus {

// Default TCP port of the broker (the embedded default binds 127.0.0.1 on it).
inline constexpr int kDefaultPort = 7690;
inline constexpr const char* kDefaultEndpoint = "tcp://127.0.0.1:7690";

// Appends the encoding of Frame{ops:[op]} to `out`.
void append_op(const v1::Op& op, std::string& out);

// Returns the encoding of Frame{ops:[op]}.
std::string encode_op(const v1::Op& op);

// The fields of a DELIVER, by reference: the broker's hot path encodes each
// publication once, straight from these, without building a v1::Op.
struct DeliverView {
  std::string_view topic;
  std::string_view payload;
  std::uint64_t seq = 0;
  std::string_view publisher;
  std::int64_t timestamp_us = 0;
  bool retained = false;
  std::string_view content_type;
};

// Writes Frame{ops:[Op{deliver}]} into `out` (replacing its contents): the
// same bytes as encode_op of the equivalent v1::Op, in one allocation.
void encode_deliver(const DeliverView& d, std::string& out);

// The fields of a PUBLISH, as views into the received bytes.
struct PublishView {
  std::uint64_t request_id = 0;
  std::string_view topic;
  std::string_view payload;
  bool ack = false;
  bool retain = false;
  std::string_view content_type;
};

// The broker's fast path for the common frame: one or more PUBLISH ops and
// nothing else.  Fills `out` with views into `data` (no allocation once `out`
// has grown) and returns true only when protobuf would parse the same bytes
// to the same values: every field known, of its wire type, at most once, and
// text fields valid UTF-8.  Anything else returns false and the caller
// decodes with protobuf (decode_frame), which handles every other case.
bool scan_publish_frame(const void* data, std::size_t size, std::vector<PublishView>& out);

// Writes Frame{ops:[Op{publish}]} into `out` (replacing its contents): the
// same bytes as encode_op of the equivalent v1::Op (fields with their proto3
// default values are not written), in one pass and at most one allocation
// (none once `out` has grown).  The client's hot path: a publication goes
// from the caller's strings to its wire bytes without building a v1::Op.
// Text fields are copied as given (protobuf would log, not refuse, invalid
// UTF-8 when serializing; the broker refuses it).
void encode_publish(const PublishView& p, std::string& out);

// The client's fast path for the common frame: one or more DELIVER ops and
// nothing else (what the broker sends a subscriber under load).  Fills `out`
// with views into `data` and returns true only when protobuf would parse the
// same bytes to the same values: every field known, of its wire type, at most
// once, and text fields (topic, publisher, content_type) valid UTF-8.
// Anything else returns false and the caller decodes with protobuf
// (decode_frame).  Views stay valid as long as `data` does.
bool scan_deliver_frame(const void* data, std::size_t size, std::vector<DeliverView>& out);

// Parses a frame.  Returns false (and leaves `out` unspecified) when the bytes
// are not a valid Frame or hold no op.
bool decode_frame(const void* data, std::size_t size, v1::Frame& out);

// Lower-case protocol name of an op ("publish", "subscribe", ...).
const char* op_name(v1::Op::BodyCase body);

// The request id a broker reply answers (REGISTERED, SUBACK, UNSUBACK, PUBACK,
// PULL_REPLY, TOPICS_REPLY, ADMIN_REPLY, ERROR); 0 for ops that answer none.
std::uint64_t answered_request_id(const v1::Op& op);

// The request id a peer's request carries (REGISTER, SUBSCRIBE, UNSUBSCRIBE,
// PUBLISH, PULL, TOPICS, ADMIN); 0 for ops that carry none.
std::uint64_t request_id_of(const v1::Op& op);

// Name of an error code without its prefix ("DENIED", "NOT_REGISTERED", ...).
std::string error_code_name(v1::ErrorCode code);

// Microseconds since the Unix epoch (wall clock) and a monotonic clock in ms.
std::int64_t wall_clock_us();
std::int64_t steady_ms();

}  // namespace curvebus
