// Outbox: the one outbound queue of curvebus.  The broker gives one to every
// session, the C++ client one to its connection; nothing else queues or
// batches encoded ops.
//
// What it holds.  Encoded single-op frames (append_op / encode_* of
// codec.hpp), concatenated as they are pushed into batches of at most
// `Limits::batch_bytes` bytes (an op larger than that travels alone).  A batch
// is one ZeroMQ message and one CURVE box on the wire; because Protobuf
// concatenates repeated fields, the peer decodes it as one Frame with every op
// in push order.  Pushing copies the bytes once, into the batch that will be
// sent: there is no per-op allocation once the batch buffers have grown (sent
// batches' buffers are reused).
//
// Bounds.  Two classes of op share the queue:
//   * kData (deliveries, publications): refused once `max_ops` ops or
//     `max_bytes` bytes are queued;
//   * kControl (replies, requests, errors): may use `headroom_ops` /
//     `headroom_bytes` beyond that, so a peer that is behind on data still
//     gets its answers, until it stops reading altogether.
// A refused push changes nothing but the drop counters and returns false: the
// caller decides what a drop means (the broker counts and logs it, the client
// refuses the publication).  Ops taken out for sending still count against
// the bounds until they are sent or put back (restore).
//
// Sending.  take() moves the oldest batch out; the caller hands it to its
// socket and either recycles it (sent) or restores it (the socket would
// block).  A restored batch goes back to the front unchanged, so the peer
// receives every accepted op exactly once, in order.  flush() is that loop
// for a caller that sends synchronously.
//
// Tags.  Each op may carry a nonzero tag (the client's request ids): take()
// reports the tags of the ops in the batch, so a sender knows which requests
// have left.
//
// Thread: none of its own, no locking.  One owner at a time (the broker's
// routing thread; in the client, the mutex that guards the connection's
// shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace curvebus {

class Outbox {
 public:
  struct Limits {
    std::size_t max_ops = 10000;
    std::size_t max_bytes = 16u << 20;
    std::size_t headroom_ops = 1024;
    std::size_t headroom_bytes = 1u << 20;
    std::size_t batch_bytes = 64 * 1024;
  };
  enum class Class { kData, kControl };

  // A batch on its way out: the concatenated frames, how many ops they are,
  // and the nonzero tags among them, in order.
  struct Batch {
    std::string bytes;
    std::size_t ops = 0;
    std::vector<std::uint64_t> tags;
  };

  Outbox() : Outbox(Limits{}) {}
  explicit Outbox(const Limits& limits) : limits_(limits) {}

  const Limits& limits() const { return limits_; }
  void set_limits(const Limits& limits) { limits_ = limits; }

  // Appends one encoded frame.  False (counted in dropped(), and in
  // control_dropped() for kControl) when the class's bound is reached.
  bool push(std::string_view encoded, Class cls = Class::kData, std::uint64_t tag = 0);
  // True when `bytes` more of class `cls` would be accepted now.
  bool has_room(std::size_t bytes, Class cls = Class::kData) const;

  // Moves the oldest batch into `out` (its previous contents are recycled).
  // False when nothing is queued.
  bool take(Batch& out);
  // Puts back a batch that take() gave and the socket did not accept: it is
  // the next one out again.
  void restore(Batch&& batch);
  // Records a taken batch as sent (counters) and keeps its buffer for reuse.
  void sent(Batch&& batch);

  // Sends batches through `send` until the queue is empty or `send` returns
  // false (the batch stays first).  Tags of sent ops are appended to
  // `sent_tags` when given.  Returns the number of ops sent.
  std::size_t flush(const std::function<bool(const std::string&)>& send,
                    std::vector<std::uint64_t>* sent_tags = nullptr);

  // Discards everything queued (a session closed); returns how many ops.  A
  // batch taken and not yet sent or restored is not affected.
  std::size_t clear();

  bool empty() const { return ops_ == 0; }
  std::size_t ops() const { return ops_; }      // queued, including taken and not yet sent
  std::size_t bytes() const { return bytes_; }  // the same, in bytes
  // A whole batch is waiting: worth handing to the socket now rather than at
  // the end of the turn.
  bool batch_full() const { return batches_.size() > 1; }

  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t control_dropped() const { return control_dropped_; }
  std::uint64_t ops_sent() const { return ops_sent_; }
  std::uint64_t bytes_sent() const { return bytes_sent_; }
  std::uint64_t batches_sent() const { return batches_sent_; }

 private:
  Batch fresh();

  Limits limits_;
  std::deque<Batch> batches_;                    // front is the oldest; only the back grows
  std::vector<Batch> spare_;                     // sent batches kept for their buffers
  std::size_t ops_ = 0, bytes_ = 0;              // queued, taken batches included
  std::size_t taken_ops_ = 0, taken_bytes_ = 0;  // in batches out of take()
  std::uint64_t dropped_ = 0, control_dropped_ = 0;
  std::uint64_t ops_sent_ = 0, bytes_sent_ = 0, batches_sent_ = 0;
};

}  // namespace curvebus
