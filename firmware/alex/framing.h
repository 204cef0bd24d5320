/* Frame assembly and frame sending, exactly as the course receiver counts
 * (protocol specification 4.3), without its memory defects:
 *
 *  - Bytes are gathered into a 140-byte window by COUNTING ONLY, from the
 *    moment the program started.  Once 140 are gathered the window is a
 *    frame and the count starts again; bytes past the 140th are kept and put
 *    at the front of the next window on the NEXT call.  So one call yields at
 *    most one frame, and a lost or stray byte shifts every later window until
 *    the host re-aligns it (it trickles single bytes until any reply).
 *  - A complete window is checked in this order: magic bytes FF FE FD FC
 *    (else FRAME_BAD_MAGIC), then the XOR of `dataSize` payload bytes
 *    against byte 136 (else FRAME_BAD_CHECKSUM).  `dataSize` is trusted as
 *    the course does, but clamped to the buffer (128), so a corrupt length
 *    cannot overrun memory.
 *
 * Main loop only (static state). */
#ifndef ALEX_FRAMING_H
#define ALEX_FRAMING_H

#include <stdint.h>

#include "alex_protocol.h"

typedef enum {
  FRAME_OK = 0,
  FRAME_BAD_MAGIC = 1,
  FRAME_BAD_CHECKSUM = 2,
  FRAME_INCOMPLETE = 3
} frame_result;

/* Feeds one chunk (n >= 1 bytes, as read from the receive ring). */
frame_result framing_feed(const uint8_t* chunk, uint8_t n, alex_packet* out);
/* Sends one 140-byte frame (unused bytes zero) through uart_write();
 * `params` may be NULL (all zero). */
void framing_send(uint8_t type, uint8_t command, const uint32_t* params, uint8_t nparams);

#endif
