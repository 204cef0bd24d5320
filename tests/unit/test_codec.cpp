#include <catch2/catch.hpp>

#include "curvebus/codec.hpp"
#include "curvebus/outbox.hpp"

using namespace curvebus;

TEST_CASE("an encoded op decodes back to a frame holding it", "[codec]") {
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_topic("robot/alex/cmd");
  p->set_payload(std::string("\x00\x01\x02", 3));
  p->set_request_id(42);
  p->set_ack(true);
  std::string bytes = encode_op(op);
  v1::Frame frame;
  REQUIRE(decode_frame(bytes.data(), bytes.size(), frame));
  REQUIRE(frame.ops_size() == 1);
  CHECK(frame.ops(0).publish().topic() == "robot/alex/cmd");
  CHECK(frame.ops(0).publish().payload() == std::string("\x00\x01\x02", 3));
  CHECK(frame.ops(0).publish().request_id() == 42);
}

TEST_CASE("a batch is the concatenation of encoded ops, order kept", "[codec]") {
  Outbox::Limits limits;
  limits.batch_bytes = 1 << 20;
  Outbox outbox(limits);
  for (int i = 0; i < 100; ++i) {
    v1::Op op;
    auto* d = op.mutable_deliver();
    d->set_topic("t/" + std::to_string(i % 3));
    d->set_seq(static_cast<std::uint64_t>(i));
    d->set_payload(std::string(static_cast<std::size_t>(i), 'x'));
    REQUIRE(outbox.push(encode_op(op)));
  }
  CHECK(outbox.ops() == 100);
  Outbox::Batch batch;
  REQUIRE(outbox.take(batch));
  CHECK(batch.ops == 100);
  const std::string bytes = batch.bytes;
  outbox.sent(std::move(batch));
  CHECK(outbox.empty());
  v1::Frame frame;
  REQUIRE(decode_frame(bytes.data(), bytes.size(), frame));
  REQUIRE(frame.ops_size() == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK(frame.ops(i).deliver().seq() == static_cast<std::uint64_t>(i));
    CHECK(frame.ops(i).deliver().payload().size() == static_cast<std::size_t>(i));
  }
}

TEST_CASE("large ops encode with multi-byte lengths", "[codec]") {
  v1::Op op;
  op.mutable_publish()->set_payload(std::string(300000, 'z'));
  std::string bytes = encode_op(op);
  v1::Frame frame;
  REQUIRE(decode_frame(bytes.data(), bytes.size(), frame));
  CHECK(frame.ops(0).publish().payload().size() == 300000);
}

TEST_CASE("garbage and empty frames are rejected, never crash", "[codec]") {
  v1::Frame frame;
  CHECK_FALSE(decode_frame("", 0, frame));  // no op
  const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
  CHECK_FALSE(decode_frame(junk, sizeof junk - 1, frame));
  std::string truncated = encode_op([] {
    v1::Op op;
    op.mutable_publish()->set_topic("abc");
    return op;
  }());
  truncated.pop_back();
  CHECK_FALSE(decode_frame(truncated.data(), truncated.size(), frame));
  // Random bytes, and a valid frame with each byte replaced by every value:
  // each is either rejected or decoded to a frame that holds an op (the
  // contract), never a crash; among the edits both outcomes occur.
  int decoded = 0, rejected = 0, decoded_without_op = 0;
  const auto decode = [&](const std::string& buf) {
    if (!decode_frame(buf.data(), buf.size(), frame)) {
      ++rejected;
      return;
    }
    ++decoded;
    if (frame.ops_size() == 0) ++decoded_without_op;
  };
  std::uint32_t x = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string buf;
    for (int i = 0; i < 64; ++i) {
      x = x * 1664525u + 1013904223u;
      buf.push_back(static_cast<char>(x >> 24));
    }
    decode(buf);
  }
  const std::string valid = encode_op([] {
    v1::Op op;
    op.mutable_publish()->set_topic("robot/alex/cmd");
    op.mutable_publish()->set_payload("xyz");
    return op;
  }());
  const int random_rejected = rejected;
  const int before_edits = decoded;
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (int v = 0; v < 256; ++v) {
      std::string buf = valid;
      buf[i] = static_cast<char>(v);
      decode(buf);
    }
  }
  CHECK(decoded_without_op == 0);
  CHECK(random_rejected > 0);
  CHECK(decoded > before_edits);
  CHECK(rejected > random_rejected);
}

TEST_CASE("error code names drop their prefix", "[codec]") {
  CHECK(error_code_name(v1::ERROR_DENIED) == "DENIED");
  CHECK(error_code_name(v1::ERROR_NOT_REGISTERED) == "NOT_REGISTERED");
  CHECK(std::string(op_name(v1::Op::kPublish)) == "publish");
}

TEST_CASE("encode_deliver writes exactly what protobuf writes for the same DELIVER", "[codec]") {
  struct Case {
    std::string topic, payload, publisher, content_type;
    std::uint64_t seq;
    std::int64_t ts;
    bool retained;
  };
  const std::string big(200000, 'x');  // multi-byte lengths at every level
  const Case cases[] = {
      {"robot/alex/telemetry", std::string(64, '\x01'), "alex", "", 1, 1764000000000000, false},
      {"a", "", "", "", 0, 0, false},  // defaults: nothing but the envelopes
      {"sensors/door", "closed", "pub", "text/plain", 1ull << 40, -5, true},
      {"t/" + std::string(300, 'n'), big, "$SYS", "application/json", 127, 128, true},
      {"x", std::string("\0\xff\x80", 3), "p", "", 0x7f, 0x3fff, false},
  };
  for (const auto& c : cases) {
    v1::Op op;
    auto* d = op.mutable_deliver();
    d->set_topic(c.topic);
    d->set_payload(c.payload);
    d->set_seq(c.seq);
    d->set_publisher(c.publisher);
    d->set_timestamp_us(c.ts);
    d->set_retained(c.retained);
    d->set_content_type(c.content_type);
    DeliverView v;
    v.topic = c.topic;
    v.payload = c.payload;
    v.seq = c.seq;
    v.publisher = c.publisher;
    v.timestamp_us = c.ts;
    v.retained = c.retained;
    v.content_type = c.content_type;
    std::string direct = "left-over contents are replaced";
    encode_deliver(v, direct);
    CHECK(direct == encode_op(op));
    v1::Frame f;
    REQUIRE(decode_frame(direct.data(), direct.size(), f));
    REQUIRE(f.ops_size() == 1);
    CHECK(f.ops(0).deliver().payload() == c.payload);
    CHECK(f.ops(0).deliver().timestamp_us() == c.ts);
  }
}

namespace {
std::string publish_frame(const std::vector<v1::Publish>& pubs) {
  std::string out;
  for (const auto& p : pubs) {
    v1::Op op;
    *op.mutable_publish() = p;
    append_op(op, out);
  }
  return out;
}
v1::Publish make_publish(std::uint64_t rid, const std::string& topic, const std::string& payload,
                         bool ack, bool retain, const std::string& ct) {
  v1::Publish p;
  p.set_request_id(rid);
  p.set_topic(topic);
  p.set_payload(payload);
  p.set_ack(ack);
  p.set_retain(retain);
  p.set_content_type(ct);
  return p;
}
}  // namespace

TEST_CASE("scan_publish_frame reads PUBLISH-only frames as protobuf does", "[codec]") {
  const std::vector<v1::Publish> pubs = {
      make_publish(1, "robot/alex/cmd", std::string(64, '\x07'), true, false, ""),
      make_publish(0, "a", "", false, true, "text/plain"),
      make_publish(~0ull, "sensors/" + std::string(200, 'z'), std::string(100000, '\0'), false,
                   false, "application/x-protobuf; curvebus.robot.v1.Command"),
  };
  const std::string bytes = publish_frame(pubs);
  std::vector<PublishView> views;
  REQUIRE(scan_publish_frame(bytes.data(), bytes.size(), views));
  REQUIRE(views.size() == pubs.size());
  for (std::size_t i = 0; i < pubs.size(); ++i) {
    CHECK(views[i].request_id == pubs[i].request_id());
    CHECK(views[i].topic == pubs[i].topic());
    CHECK(views[i].payload == pubs[i].payload());
    CHECK(views[i].ack == pubs[i].ack());
    CHECK(views[i].retain == pubs[i].retain());
    CHECK(views[i].content_type == pubs[i].content_type());
  }
}

TEST_CASE("scan_publish_frame leaves everything unusual to protobuf", "[codec]") {
  std::vector<PublishView> views;
  auto scans = [&](const std::string& b) { return scan_publish_frame(b.data(), b.size(), views); };
  const std::string good = publish_frame({make_publish(7, "t/x", "p", true, false, "")});
  REQUIRE(scans(good));
  CHECK_FALSE(scans(""));                               // no op
  CHECK_FALSE(scans(good.substr(0, good.size() - 1)));  // truncated
  // Another op in the frame (a heartbeat after the publish).
  v1::Op hb;
  hb.mutable_heartbeat();
  CHECK_FALSE(scans(good + encode_op(hb)));
  // A repeated field (protobuf keeps the last; the scan declines).
  std::string twice = good;
  twice[1] = static_cast<char>(twice[1] + 3);  // op length
  twice[3] = static_cast<char>(twice[3] + 3);  // publish length
  twice += std::string("\x12\x01q", 3);        // topic again: "q"
  v1::Frame f;
  REQUIRE(decode_frame(twice.data(), twice.size(), f));
  CHECK(f.ops(0).publish().topic() == "q");
  CHECK_FALSE(scans(twice));
  // An unknown field in the publish (number 9, varint).
  std::string unknown = good;
  unknown[1] = static_cast<char>(unknown[1] + 2);
  unknown[3] = static_cast<char>(unknown[3] + 2);
  unknown += std::string("\x48\x01", 2);
  REQUIRE(decode_frame(unknown.data(), unknown.size(), f));
  CHECK_FALSE(scans(unknown));
  // Invalid UTF-8 in the topic: protobuf refuses it, so must the scan.
  const std::string bad_text = publish_frame({make_publish(1, "ok", "p", false, false, "")});
  std::string mangled = bad_text;
  mangled[mangled.find("ok")] = '\xff';
  CHECK_FALSE(decode_frame(mangled.data(), mangled.size(), f));
  CHECK_FALSE(scans(mangled));
  // Bytes in the payload are not text: any value is fine.
  const std::string binary = publish_frame({make_publish(1, "ok", "\xff\xfe", false, false, "")});
  CHECK(scans(binary));
}
