// The recommended receiver (alex-protocol.md §4.4): accept a frame only with
// the magic FF FE FD FC at its start, dataSize 100 and a matching XOR; on any
// failure drop one byte and search for the magic again.  Survives partial
// reads, garbage and bad checksums (all counted); the buffer is bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "alex/packet.hpp"

namespace curvebus::alex {

struct DecoderStats {
  std::uint64_t frames_ok = 0;      // valid frames handed out by next()
  std::uint64_t bad_checksum = 0;   // magic and size right, XOR wrong
  std::uint64_t garbage_bytes = 0;  // bytes skipped while searching for the magic
  std::uint64_t bad_size = 0;       // magic right, dataSize != 100
};

// At most this many bytes are kept; older ones are dropped (counted as garbage).
inline constexpr std::size_t kDecoderMaxBuffered = 8 * kFrameSize;

class StreamDecoder {
 public:
  // Appends bytes as they came off the line (any chunk size).
  void feed(const std::uint8_t* p, std::size_t n);
  // Takes the next complete, valid packet out of the buffer; false when no
  // complete frame is buffered.  Call until false after every feed().
  bool next(Packet& out);
  void reset();  // drops buffered bytes (stats are kept)
  const DecoderStats& stats() const { return stats_; }
  std::size_t buffered() const { return buf_.size() - start_; }

 private:
  void compact();
  std::vector<std::uint8_t> buf_;
  std::size_t start_ = 0;
  DecoderStats stats_;
};

}  // namespace curvebus::alex
