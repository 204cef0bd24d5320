// The client library's codec fast paths against protobuf, property-style:
// encode_publish must write the bytes encode_op writes for the same PUBLISH,
// and scan_deliver_frame must read what protobuf reads or decline.
#include <google/protobuf/stubs/logging.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "curvebus/codec.hpp"

using namespace curvebus;

namespace {

// Deterministic random cases; the seed is printed with any failure.
struct Gen {
  explicit Gen(std::uint32_t seed) : rng(seed) {}
  std::mt19937_64 rng;

  std::uint64_t u(std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  }
  bool coin(int percent = 50) { return u(0, 99) < static_cast<std::uint64_t>(percent); }

  // Varint-interesting numbers: 0, small, each byte length, the extremes.
  std::uint64_t number() {
    switch (u(0, 5)) {
      case 0:
        return 0;
      case 1:
        return u(1, 127);
      case 2:
        return u(128, 1u << 21);
      case 3:
        return ~std::uint64_t{0} - u(0, 3);
      default:
        return u(0, ~std::uint64_t{0}) >> u(0, 63);
    }
  }

  // Valid UTF-8 of 0..max code points, 1 to 4 bytes each.
  std::string text(std::size_t max) {
    static const char* const pieces[] = {
        "a", "Z", "/", "+", "#", "$", "0", "-", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
        " "};
    std::string s;
    const std::size_t n = static_cast<std::size_t>(u(0, max));
    for (std::size_t i = 0; i < n; ++i) s += pieces[u(0, std::size(pieces) - 1)];
    return s;
  }

  std::string bytes(std::size_t max) {
    std::string s(static_cast<std::size_t>(u(0, max)), '\0');
    for (auto& c : s) c = static_cast<char>(u(0, 255));
    return s;
  }

  // Sizes that cross the one-, two- and three-byte length prefixes.
  std::string payload() {
    switch (u(0, 4)) {
      case 0:
        return "";
      case 1:
        return bytes(127);
      case 2:
        return bytes(300);
      case 3:
        return std::string(static_cast<std::size_t>(u(16380, 16400)), 'p');
      default:
        return bytes(64);
    }
  }

  v1::Op deliver() {
    v1::Op op;
    auto* d = op.mutable_deliver();
    d->set_topic(text(40));
    d->set_payload(payload());
    d->set_seq(number());
    if (coin()) d->set_publisher(text(12));
    d->set_timestamp_us(coin(20) ? -static_cast<std::int64_t>(u(1, 1u << 30))
                                 : static_cast<std::int64_t>(number() >> 1));
    d->set_retained(coin(20));
    if (coin(30)) d->set_content_type(text(30));
    return op;
  }
};

void check_same(const DeliverView& v, const v1::Deliver& d) {
  CHECK(v.topic == d.topic());
  CHECK(v.payload == d.payload());
  CHECK(v.seq == d.seq());
  CHECK(v.publisher == d.publisher());
  CHECK(v.timestamp_us == d.timestamp_us());
  CHECK(v.retained == d.retained());
  CHECK(v.content_type == d.content_type());
}

// Silences protobuf's log lines (invalid UTF-8 in mutated frames) for a scope.
struct QuietProtobuf {
  QuietProtobuf() { previous = google::protobuf::SetLogHandler(nullptr); }
  ~QuietProtobuf() { google::protobuf::SetLogHandler(previous); }
  google::protobuf::LogHandler* previous;
};

}  // namespace

TEST_CASE("encode_publish writes exactly the bytes encode_op writes for the same PUBLISH",
          "[codec][client]") {
  const std::uint32_t seed = GENERATE(1u, 2u, 3u, 4u);
  INFO("seed " << seed);
  Gen g(seed);
  std::string direct;
  for (int i = 0; i < 1000; ++i) {
    v1::Op op;
    auto* p = op.mutable_publish();
    p->set_request_id(g.coin() ? 0 : g.number());
    p->set_topic(g.text(40));
    p->set_payload(g.payload());
    p->set_ack(g.coin(30));
    p->set_retain(g.coin(30));
    if (g.coin(30)) p->set_content_type(g.text(50));
    PublishView v;
    v.request_id = p->request_id();
    v.topic = p->topic();
    v.payload = p->payload();
    v.ack = p->ack();
    v.retain = p->retain();
    v.content_type = p->content_type();
    encode_publish(v, direct);
    INFO("case " << i);
    REQUIRE(direct == encode_op(op));
  }
}

TEST_CASE("encode_publish replaces what the buffer held and reuses it", "[codec][client]") {
  std::string out(500, 'x');
  PublishView v;
  v.topic = "a/b";
  v.payload = "hi";
  encode_publish(v, out);
  v1::Op op;
  op.mutable_publish()->set_topic("a/b");
  op.mutable_publish()->set_payload("hi");
  CHECK(out == encode_op(op));
  CHECK(out.capacity() >= 500);
}

TEST_CASE("scan_deliver_frame reads batches of DELIVERs exactly as protobuf does",
          "[codec][client]") {
  const std::uint32_t seed = GENERATE(11u, 12u, 13u);
  INFO("seed " << seed);
  Gen g(seed);
  std::vector<DeliverView> views;
  v1::Frame parsed;
  for (int i = 0; i < 300; ++i) {
    INFO("case " << i);
    std::string batch;
    const std::size_t n = static_cast<std::size_t>(g.u(1, 20));
    for (std::size_t k = 0; k < n; ++k) append_op(g.deliver(), batch);
    REQUIRE(decode_frame(batch.data(), batch.size(), parsed));
    REQUIRE(scan_deliver_frame(batch.data(), batch.size(), views));
    REQUIRE(views.size() == static_cast<std::size_t>(parsed.ops_size()));
    for (std::size_t k = 0; k < n; ++k)
      check_same(views[k], parsed.ops(static_cast<int>(k)).deliver());
  }
}

TEST_CASE("scan_deliver_frame either agrees with protobuf or declines, on damaged frames",
          "[codec][client]") {
  QuietProtobuf quiet;
  const std::uint32_t seed = GENERATE(21u, 22u, 23u, 24u);
  INFO("seed " << seed);
  Gen g(seed);
  std::vector<DeliverView> views;
  v1::Frame parsed;
  int accepted = 0, declined = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string batch;
    const std::size_t n = static_cast<std::size_t>(g.u(1, 4));
    for (std::size_t k = 0; k < n; ++k) {
      v1::Op op = g.deliver();
      // Small payloads keep the damage near the structure.
      op.mutable_deliver()->set_payload(g.bytes(8));
      append_op(op, batch);
    }
    const int damage = static_cast<int>(g.u(1, 3));
    for (int d = 0; d < damage && !batch.empty(); ++d) {
      const std::size_t at = static_cast<std::size_t>(g.u(0, batch.size() - 1));
      switch (g.u(0, 4)) {
        case 0:  // one bit
          batch[at] = static_cast<char>(batch[at] ^ (1 << g.u(0, 7)));
          break;
        case 1:  // one byte
          batch[at] = static_cast<char>(g.u(0, 255));
          break;
        case 2:  // cut short
          batch.resize(at);
          break;
        case 3:  // a byte more
          batch.insert(at, 1, static_cast<char>(g.u(0, 255)));
          break;
        default:  // a byte less
          batch.erase(at, 1);
          break;
      }
    }
    INFO("case " << i);
    if (scan_deliver_frame(batch.data(), batch.size(), views)) {
      ++accepted;
      REQUIRE(decode_frame(batch.data(), batch.size(), parsed));
      REQUIRE(views.size() == static_cast<std::size_t>(parsed.ops_size()));
      for (std::size_t k = 0; k < views.size(); ++k) {
        const auto& op = parsed.ops(static_cast<int>(k));
        REQUIRE(op.body_case() == v1::Op::kDeliver);
        check_same(views[k], op.deliver());
      }
    } else {
      ++declined;
    }
  }
  // Both outcomes were exercised, so the property was really tested.
  CHECK(accepted > 100);
  CHECK(declined > 100);
}

TEST_CASE("scan_deliver_frame declines every frame that is not DELIVERs alone and well formed",
          "[codec][client]") {
  QuietProtobuf quiet;
  std::vector<DeliverView> views;
  v1::Op deliver;
  deliver.mutable_deliver()->set_topic("a/b");
  deliver.mutable_deliver()->set_payload("x");
  deliver.mutable_deliver()->set_seq(7);
  std::string frame = encode_op(deliver);
  REQUIRE(scan_deliver_frame(frame.data(), frame.size(), views));
  REQUIRE(views.size() == 1);
  CHECK(views[0].seq == 7);

  SECTION("another op in the batch") {
    v1::Op ping;
    ping.mutable_ping()->set_nonce(3);
    append_op(ping, frame);
    CHECK_FALSE(scan_deliver_frame(frame.data(), frame.size(), views));
  }
  SECTION("an unknown field, which protobuf skips") {
    v1::Deliver d = deliver.deliver();
    std::string body = d.SerializeAsString() + std::string("\x48\x01", 2);  // field 9, varint 1
    std::string raw = std::string("\x0A") + static_cast<char>(body.size() + 2) + "\x42" +
                      static_cast<char>(body.size()) + body;
    v1::Frame parsed;
    REQUIRE(decode_frame(raw.data(), raw.size(), parsed));
    CHECK_FALSE(scan_deliver_frame(raw.data(), raw.size(), views));
  }
  SECTION("a field given twice, which protobuf resolves to the last") {
    std::string body = deliver.deliver().SerializeAsString() + std::string("\x18\x09", 2);
    std::string raw = std::string("\x0A") + static_cast<char>(body.size() + 2) + "\x42" +
                      static_cast<char>(body.size()) + body;
    v1::Frame parsed;
    REQUIRE(decode_frame(raw.data(), raw.size(), parsed));
    CHECK(parsed.ops(0).deliver().seq() == 9);
    CHECK_FALSE(scan_deliver_frame(raw.data(), raw.size(), views));
  }
  SECTION("a topic that is not UTF-8, which protobuf refuses too") {
    v1::Op bad = deliver;
    bad.mutable_deliver()->set_topic(std::string("a/\xC3(", 4));
    const std::string raw = encode_op(bad);
    v1::Frame parsed;
    CHECK_FALSE(decode_frame(raw.data(), raw.size(), parsed));
    CHECK_FALSE(scan_deliver_frame(raw.data(), raw.size(), views));
  }
  SECTION("an empty frame") {
    CHECK_FALSE(scan_deliver_frame("", 0, views));
  }
}

TEST_CASE("request_id_of reads the id of every request op and 0 of the rest", "[codec][client]") {
  v1::Op op;
  op.mutable_register_()->set_request_id(1);
  CHECK(request_id_of(op) == 1);
  op.mutable_subscribe()->set_request_id(2);
  CHECK(request_id_of(op) == 2);
  op.mutable_unsubscribe()->set_request_id(3);
  CHECK(request_id_of(op) == 3);
  op.mutable_publish()->set_request_id(4);
  CHECK(request_id_of(op) == 4);
  op.mutable_pull()->set_request_id(5);
  CHECK(request_id_of(op) == 5);
  op.mutable_topics()->set_request_id(6);
  CHECK(request_id_of(op) == 6);
  op.mutable_admin()->set_request_id(7);
  CHECK(request_id_of(op) == 7);
  op.mutable_suback()->set_request_id(8);
  CHECK(request_id_of(op) == 0);
  op.mutable_heartbeat();
  CHECK(request_id_of(op) == 0);
}
