#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "curvebus/codec.hpp"
#include "curvebus/outbox.hpp"

using namespace curvebus;

namespace {

std::string deliver(std::uint64_t seq, std::size_t payload = 10) {
  v1::Op op;
  auto* d = op.mutable_deliver();
  d->set_topic("t");
  d->set_seq(seq);
  d->set_payload(std::string(payload, 'x'));
  return encode_op(op);
}

// Every seq the batches carried, in order.
std::vector<std::uint64_t> seqs_of(const std::vector<std::string>& batches) {
  std::vector<std::uint64_t> out;
  for (const auto& b : batches) {
    v1::Frame f;
    REQUIRE(decode_frame(b.data(), b.size(), f));
    for (const auto& op : f.ops()) out.push_back(op.deliver().seq());
  }
  return out;
}

}  // namespace

TEST_CASE("outbox: batches hold at most batch_bytes and keep push order", "[outbox]") {
  Outbox::Limits l;
  l.batch_bytes = 200;
  Outbox o(l);
  const std::size_t one = deliver(1).size();
  for (std::uint64_t i = 1; i <= 50; ++i) REQUIRE(o.push(deliver(i)));
  CHECK(o.ops() == 50);
  CHECK(o.bytes() == 50 * one);
  CHECK(o.batch_full());
  std::vector<std::string> sent;
  const std::size_t n = o.flush([&](const std::string& b) {
    CHECK(b.size() <= 200);
    sent.push_back(b);
    return true;
  });
  CHECK(n == 50);
  CHECK(o.empty());
  CHECK(o.bytes() == 0);
  CHECK(sent.size() == (50 + 200 / one - 1) / (200 / one));
  std::vector<std::uint64_t> want;
  for (std::uint64_t i = 1; i <= 50; ++i) want.push_back(i);
  CHECK(seqs_of(sent) == want);
  CHECK(o.ops_sent() == 50);
  CHECK(o.batches_sent() == sent.size());
}

TEST_CASE("outbox: an op larger than a batch travels alone", "[outbox]") {
  Outbox::Limits l;
  l.batch_bytes = 100;
  Outbox o(l);
  REQUIRE(o.push(deliver(1)));
  REQUIRE(o.push(deliver(2, 5000)));
  REQUIRE(o.push(deliver(3)));
  std::vector<std::string> sent;
  o.flush([&](const std::string& b) {
    sent.push_back(b);
    return true;
  });
  REQUIRE(sent.size() == 3);
  CHECK(seqs_of(sent) == std::vector<std::uint64_t>{1, 2, 3});
}

TEST_CASE("outbox: a batch the socket refuses is sent first and unchanged next time", "[outbox]") {
  Outbox::Limits l;
  l.batch_bytes = 100;
  Outbox o(l);
  for (std::uint64_t i = 1; i <= 20; ++i) REQUIRE(o.push(deliver(i)));
  std::vector<std::string> sent;
  int calls = 0;
  std::string refused;
  o.flush([&](const std::string& b) {
    if (++calls == 2) {
      refused = b;
      return false;
    }
    sent.push_back(b);
    return true;
  });
  CHECK(sent.size() == 1);
  // More arrives while the socket is full; order is still push order.
  for (std::uint64_t i = 21; i <= 25; ++i) REQUIRE(o.push(deliver(i)));
  Outbox::Batch b;
  REQUIRE(o.take(b));
  CHECK(b.bytes == refused);
  o.restore(std::move(b));
  o.flush([&](const std::string& x) {
    sent.push_back(x);
    return true;
  });
  std::vector<std::uint64_t> want;
  for (std::uint64_t i = 1; i <= 25; ++i) want.push_back(i);
  CHECK(seqs_of(sent) == want);
  CHECK(o.empty());
}

TEST_CASE("outbox: data is refused at its bound, control uses the headroom, drops are counted",
          "[outbox]") {
  Outbox::Limits l;
  l.max_ops = 10;
  l.max_bytes = 1 << 20;
  l.headroom_ops = 2;
  Outbox o(l);
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(o.push(deliver(i)));
  CHECK_FALSE(o.has_room(1));
  CHECK_FALSE(o.push(deliver(11)));
  CHECK(o.dropped() == 1);
  CHECK(o.control_dropped() == 0);
  CHECK(o.push(deliver(12), Outbox::Class::kControl));
  CHECK(o.push(deliver(13), Outbox::Class::kControl));
  CHECK_FALSE(o.push(deliver(14), Outbox::Class::kControl));
  CHECK(o.dropped() == 2);
  CHECK(o.control_dropped() == 1);
  CHECK(o.ops() == 12);
  // The refused ops are not queued: what goes out is exactly what was accepted.
  std::vector<std::string> sent;
  o.flush([&](const std::string& b) {
    sent.push_back(b);
    return true;
  });
  CHECK(seqs_of(sent) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13});
}

TEST_CASE("outbox: the byte bound counts queued bytes, taken batches included", "[outbox]") {
  const std::size_t one = deliver(1).size();
  Outbox::Limits l;
  l.max_bytes = 3 * one;
  l.headroom_bytes = 0;
  Outbox o(l);
  REQUIRE(o.push(deliver(1)));
  REQUIRE(o.push(deliver(2)));
  Outbox::Batch b;
  REQUIRE(o.take(b));
  REQUIRE(o.push(deliver(3)));
  CHECK_FALSE(o.push(deliver(4)));  // the taken batch still counts
  o.sent(std::move(b));
  CHECK(o.bytes() == one);
  CHECK(o.push(deliver(4)));
}

TEST_CASE("outbox: tags of sent ops are reported in order", "[outbox]") {
  Outbox o;
  REQUIRE(o.push(deliver(1), Outbox::Class::kControl, 7));
  REQUIRE(o.push(deliver(2)));
  REQUIRE(o.push(deliver(3), Outbox::Class::kControl, 9));
  std::vector<std::uint64_t> tags;
  CHECK(o.flush([](const std::string&) { return true; }, &tags) == 3);
  CHECK(tags == std::vector<std::uint64_t>{7, 9});
}

TEST_CASE("outbox: clear discards what is queued but not a batch on its way out", "[outbox]") {
  Outbox::Limits l;
  l.batch_bytes = 1;  // one op per batch
  Outbox o(l);
  for (std::uint64_t i = 1; i <= 3; ++i) REQUIRE(o.push(deliver(i)));
  Outbox::Batch b;
  REQUIRE(o.take(b));
  CHECK(o.clear() == 2);
  CHECK(o.ops() == 1);
  o.sent(std::move(b));
  CHECK(o.empty());
  CHECK(o.bytes() == 0);
  Outbox::Batch none;
  CHECK_FALSE(o.take(none));
}
