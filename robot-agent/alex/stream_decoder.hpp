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
  std::uint64_t frames_ok = 0;
  std::uint64_t bad_checksum = 0;
  std::uint64_t bad_size = 0;
  std::uint64_t garbage_bytes = 0;  // bytes skipped while searching for the magic
};

class StreamDecoder {
 public:
  void feed(const std::uint8_t* p, std::size_t n);
  // Takes the next complete, valid packet out of the buffer.
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
