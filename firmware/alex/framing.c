/* Course-compatible frame assembly and sending (see framing.h). */
#include "framing.h"

#include <string.h>

#include "uart.h"

static uint8_t window[ALEX_FRAME_SIZE];
static uint8_t window_len;
static uint8_t carry[ALEX_FRAME_SIZE]; /* bytes past the 140th, for the next call */
static uint8_t carry_len;

static const uint8_t magic[4] = {0xFF, 0xFE, 0xFD, 0xFC};

static uint32_t get_le32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static frame_result check_window(alex_packet* out) {
  if (memcmp(window + ALEX_OFF_MAGIC, magic, sizeof magic) != 0) return FRAME_BAD_MAGIC;
  uint32_t size = get_le32(window + ALEX_OFF_SIZE);
  if (size > ALEX_BUFFER_SIZE) size = ALEX_BUFFER_SIZE;
  uint8_t sum = 0;
  for (uint8_t i = 0; i < (uint8_t)size; ++i) sum ^= window[ALEX_OFF_PAYLOAD + i];
  if (sum != window[ALEX_CHECKSUM_AT]) return FRAME_BAD_CHECKSUM;
  const uint8_t* pkt = window + ALEX_OFF_PAYLOAD;
  /* Bytes the sender's dataSize did not cover read as zero. */
  uint8_t copy[ALEX_PACKET_SIZE];
  memset(copy, 0, sizeof copy);
  memcpy(copy, pkt, size < ALEX_PACKET_SIZE ? (uint8_t)size : ALEX_PACKET_SIZE);
  out->type = copy[ALEX_PKT_TYPE];
  out->command = copy[ALEX_PKT_COMMAND];
  for (uint8_t i = 0; i < ALEX_PARAMS; ++i)
    out->params[i] = get_le32(copy + ALEX_PKT_PARAMS + 4 * i);
  return FRAME_OK;
}

frame_result framing_feed(const uint8_t* chunk, uint8_t n, alex_packet* out) {
  /* What the previous call could not use starts this window. */
  if (carry_len) {
    memcpy(window, carry, carry_len);
    window_len = carry_len;
    carry_len = 0;
  }
  for (uint8_t i = 0; i < n; ++i) {
    if (window_len < ALEX_FRAME_SIZE) {
      window[window_len++] = chunk[i];
    } else if (carry_len < sizeof carry) {
      carry[carry_len++] = chunk[i];
    }
  }
  if (window_len < ALEX_FRAME_SIZE) return FRAME_INCOMPLETE;
  window_len = 0;
  return check_window(out);
}

static void put_le32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

void framing_send(uint8_t type, uint8_t command, const uint32_t* params, uint8_t nparams) {
  /* The frame is built whole (the window buffer is busy only between calls
   * of framing_feed, so a separate buffer keeps the two apart). */
  static uint8_t frame[ALEX_FRAME_SIZE];
  memset(frame, 0, sizeof frame);
  memcpy(frame + ALEX_OFF_MAGIC, magic, sizeof magic);
  put_le32(frame + ALEX_OFF_SIZE, ALEX_PACKET_SIZE);
  uint8_t* pkt = frame + ALEX_OFF_PAYLOAD;
  pkt[ALEX_PKT_TYPE] = type;
  pkt[ALEX_PKT_COMMAND] = command;
  if (params) {
    if (nparams > ALEX_PARAMS) nparams = ALEX_PARAMS;
    for (uint8_t i = 0; i < nparams; ++i) put_le32(pkt + ALEX_PKT_PARAMS + 4 * i, params[i]);
  }
  uint8_t sum = 0;
  for (uint8_t i = 0; i < ALEX_PACKET_SIZE; ++i) sum ^= pkt[i];
  frame[ALEX_CHECKSUM_AT] = sum;
  for (uint8_t i = 0; i < ALEX_FRAME_SIZE; ++i) uart_write(frame[i]);
}
