// libFuzzer harness: the Alex stream decoder fed in chunk sizes taken from
// the input, and the simulated firmware's receiver in strict and resync modes.
// Input: first byte seeds the chunk sizes, the rest is the line.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "alex/stream_decoder.hpp"
#include "sim/sim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint32_t seed = data[0] * 2654435761u + 1;
  const uint8_t* p = data + 1;
  size_t n = size - 1;

  curvebus::alex::StreamDecoder dec;
  size_t off = 0;
  while (off < n) {
    seed = seed * 1103515245u + 12345u;
    size_t chunk = 1 + (seed >> 16) % 200;
    if (chunk > n - off) chunk = n - off;
    dec.feed(p + off, chunk);
    off += chunk;
    curvebus::alex::Packet pkt;
    while (dec.next(pkt)) {
    }
  }
  (void)dec.stats();

  for (bool strict : {false, true}) {
    size_t emitted = 0;
    curvebus::alexsim::Firmware fw(
        curvebus::alexsim::MotionConfig{}, [&](const std::vector<uint8_t>& b) { emitted += b.size(); },
        [](const std::string&) {});
    fw.set_strict(strict);
    std::int64_t now = 0;
    off = 0;
    while (off < n) {
      seed = seed * 1103515245u + 12345u;
      size_t chunk = 1 + (seed >> 16) % 160;
      if (chunk > n - off) chunk = n - off;
      fw.receive(p + off, chunk, now);
      now += 10;
      fw.tick(now);
      off += chunk;
    }
  }
  return 0;
}
