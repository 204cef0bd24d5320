#include "alex/stream_decoder.hpp"

#include <algorithm>

namespace curvebus::alex {

namespace {
constexpr std::uint8_t kMagicBytes[4] = {0xFF, 0xFE, 0xFD, 0xFC};
constexpr std::size_t kMaxBuffered = kDecoderMaxBuffered;
}  // namespace

void StreamDecoder::feed(const std::uint8_t* p, std::size_t n) {
  if (n > kMaxBuffered) {  // only the newest bytes could ever be kept
    stats_.garbage_bytes += n - kMaxBuffered;
    p += n - kMaxBuffered;
    n = kMaxBuffered;
  }
  buf_.insert(buf_.end(), p, p + n);
  // Bounded: a flood without any frame start costs at most a few frames of memory.
  if (buffered() > kMaxBuffered) {
    const std::size_t drop = buffered() - kMaxBuffered;
    stats_.garbage_bytes += drop;
    start_ += drop;
  }
  compact();
}

void StreamDecoder::compact() {
  if (start_ > 0 && (start_ >= buf_.size() / 2 || start_ > 4 * kFrameSize)) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
}

bool StreamDecoder::next(Packet& out) {
  while (true) {
    const std::uint8_t* data = buf_.data() + start_;
    const std::size_t n = buffered();
    // Skip to the first possible magic (a partial one at the end is kept).
    std::size_t i = 0;
    while (i < n) {
      const std::size_t m = std::min<std::size_t>(4, n - i);
      if (std::equal(data + i, data + i + m, kMagicBytes)) break;
      ++i;
    }
    stats_.garbage_bytes += i;
    start_ += i;
    if (buffered() < kFrameSize) {
      compact();
      return false;
    }
    switch (check_frame(buf_.data() + start_, &out)) {
      case FrameCheck::Ok:
        ++stats_.frames_ok;
        start_ += kFrameSize;
        compact();
        return true;
      case FrameCheck::BadChecksum:
        ++stats_.bad_checksum;
        break;
      case FrameCheck::BadSize:
        ++stats_.bad_size;
        break;
      case FrameCheck::BadMagic:
        break;
    }
    // Resync: drop one byte and search again.
    ++stats_.garbage_bytes;
    ++start_;
  }
}

void StreamDecoder::reset() {
  buf_.clear();
  start_ = 0;
}

}  // namespace curvebus::alex
