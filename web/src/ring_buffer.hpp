// A fixed-capacity byte ring: one direction of a relay.
//
// The reader of one side fills writable(), the writer to the other side
// drains readable(); both hand out one contiguous span.  One read into
// writable() and one write from readable() may be in flight at once: the two
// spans never overlap, consume() does not move the free span's start and
// commit() does not move the data's start.  The capacity is allocated once
// (allocate()) and never grows: when writable() is empty the caller stops reading, which
// is the relay's back-pressure.  Not thread-safe (the relay has one thread).
#pragma once

#include <cstddef>
#include <vector>

#include <boost/asio/buffer.hpp>

namespace curvebus::web {

class RingBuffer {
 public:
  // Capacity 0 until allocate(): a ring that is full and empty at once.
  RingBuffer() = default;
  void allocate(std::size_t capacity) {
    data_.assign(capacity, 0);
    head_ = size_ = 0;
  }

  std::size_t capacity() const { return data_.size(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == data_.size(); }

  // The free bytes after the data, up to the end of the storage.
  boost::asio::mutable_buffer writable() {
    if (full()) return {};
    const std::size_t tail = (head_ + size_) % data_.size();
    const std::size_t len = tail >= head_ ? data_.size() - tail : head_ - tail;
    return {data_.data() + tail, len};
  }
  // The oldest bytes, up to the end of the storage.
  boost::asio::const_buffer readable() const {
    const std::size_t len = size_ < data_.size() - head_ ? size_ : data_.size() - head_;
    return {data_.data() + head_, len};
  }
  void commit(std::size_t n) { size_ += n; }
  void consume(std::size_t n) {
    head_ = (head_ + n) % data_.size();
    size_ -= n;
  }
  // Moves an empty ring's start to the storage's start, so the next read gets
  // the whole capacity in one span.  Only while no read is in flight.
  void rewind_if_empty() {
    if (size_ == 0) head_ = 0;
  }

 private:
  std::vector<char> data_;
  std::size_t head_ = 0;  // first byte of data
  std::size_t size_ = 0;  // bytes of data
};

}  // namespace curvebus::web
