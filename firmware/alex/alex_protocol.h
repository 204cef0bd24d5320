/* The Alex serial protocol as the firmware sees it: the 140-byte frame, the
 * 100-byte packet inside it and the codes (see the project's protocol
 * specification, sections 2-4).  Pure definitions, no state.
 *
 * Every multi-byte field is little-endian on the wire; the AVR is
 * little-endian too, but the packet is still read and written byte by byte
 * so the code does not depend on it. */
#ifndef ALEX_PROTOCOL_H
#define ALEX_PROTOCOL_H

#include <stdint.h>

#define ALEX_FRAME_SIZE 140  /* magic 4 + dataSize 4 + buffer 128 + checksum 1 + pad 3 */
#define ALEX_PACKET_SIZE 100 /* type 1 + command 1 + pad 2 + data 32 + params 16 x 4 */
#define ALEX_BUFFER_SIZE 128
#define ALEX_CHECKSUM_AT 136
#define ALEX_PARAMS 16

/* Offsets inside the frame. */
#define ALEX_OFF_MAGIC 0
#define ALEX_OFF_SIZE 4
#define ALEX_OFF_PAYLOAD 8

/* Offsets inside the packet. */
#define ALEX_PKT_TYPE 0
#define ALEX_PKT_COMMAND 1
#define ALEX_PKT_DATA 4
#define ALEX_PKT_PARAMS 36

/* Packet types. */
enum {
  PACKET_TYPE_COMMAND = 0,
  PACKET_TYPE_RESPONSE = 1,
  PACKET_TYPE_ERROR = 2,
  PACKET_TYPE_MESSAGE = 3,
  PACKET_TYPE_HELLO = 4
};

/* Response and error codes (the `command` byte of RESPONSE / ERROR packets). */
enum {
  RESP_OK = 0,
  RESP_STATUS = 1,
  RESP_BAD_PACKET = 2,
  RESP_BAD_CHECKSUM = 3,
  RESP_BAD_COMMAND = 4,
  RESP_BAD_RESPONSE = 5
};

/* Commands (the `command` byte of COMMAND packets). */
enum {
  COMMAND_FORWARD = 0,
  COMMAND_REVERSE = 1,
  COMMAND_TURN_LEFT = 2,
  COMMAND_TURN_RIGHT = 3,
  COMMAND_STOP = 4,
  COMMAND_GET_STATS = 5,
  COMMAND_CLEAR_STATS = 6
};

/* A decoded packet: only what the firmware uses. */
typedef struct {
  uint8_t type;
  uint8_t command;
  uint32_t params[ALEX_PARAMS];
} alex_packet;

#endif
