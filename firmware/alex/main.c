/* Alex firmware for the ATmega328P (Arduino Uno), written from the curvebus
 * protocol specification: the course protocol's frames and answers over
 * UART0, motors with PWM, wheel encoders, distance and angle stops, and an
 * opt-in on-board watchdog.
 *
 * The loop, like the course firmware's: read every byte waiting in the
 * receive ring, feed them to the frame assembler (one frame per call), answer
 * and act, apply the motion stops; sleep until the next interrupt when there
 * is nothing to do.  Replies go out only in answer to a frame: the firmware
 * never sends anything unsolicited.
 *
 * Build options (-D):
 *   ALEX_BAUD=9600        line rate (9600 or 57600)
 *   ALEX_WATCHDOG_MS=0    when > 0: motors stop once no valid frame arrived
 *                         for that long (the host's telemetry poll is the
 *                         heartbeat).  Off by default: the course protocol is
 *                         unchanged. */
#include <avr/interrupt.h>
#include <avr/io.h>

#include "alex_protocol.h"
#include "board.h"
#include "framing.h"
#include "motion.h"
#include "uart.h"

#ifndef ALEX_BAUD
#define ALEX_BAUD 9600
#endif
#ifndef ALEX_WATCHDOG_MS
#define ALEX_WATCHDOG_MS 0
#endif

static void send_response(uint8_t code) {
  framing_send(PACKET_TYPE_RESPONSE, code, 0, 0);
}
static void send_error(uint8_t code) {
  framing_send(PACKET_TYPE_ERROR, code, 0, 0);
}

static void handle_command(const alex_packet* p) {
  const uint32_t a = p->params[0];
  const uint32_t b = p->params[1];
  switch (p->command) {
    /* Motion: OK first, then move (the course order). */
    case COMMAND_FORWARD:
      send_response(RESP_OK);
      motion_forward(a, b);
      break;
    case COMMAND_REVERSE:
      send_response(RESP_OK);
      motion_reverse(a, b);
      break;
    case COMMAND_TURN_LEFT:
      send_response(RESP_OK);
      motion_left(a, b);
      break;
    case COMMAND_TURN_RIGHT:
      send_response(RESP_OK);
      motion_right(a, b);
      break;
    /* STOP: motors off first, then OK — the wire is the course's, and the
     * motors do not run on while the 140-byte answer drains (~80 ms at 9600). */
    case COMMAND_STOP:
      motion_stop();
      send_response(RESP_OK);
      break;
    case COMMAND_GET_STATS: {
      uint32_t stats[10];
      motion_stats(stats);
      framing_send(PACKET_TYPE_RESPONSE, RESP_STATUS, stats, 10);
      break;
    }
    case COMMAND_CLEAR_STATS: /* every value of params[0] clears all */
      motion_clear_stats();
      send_response(RESP_OK);
      break;
    default:
      send_error(RESP_BAD_COMMAND);
      break;
  }
}

int main(void) {
  board_init();
  motion_init();
  uart_init(ALEX_BAUD);
  sei();

  uint32_t last_valid_ms = board_millis();
  uint8_t chunk[ALEX_FRAME_SIZE];
  for (;;) {
    uint8_t n = 0;
    while (n < sizeof chunk && uart_available()) chunk[n++] = uart_read();
    if (n) {
      alex_packet p;
      switch (framing_feed(chunk, n, &p)) {
        case FRAME_OK:
          last_valid_ms = board_millis();
          /* HELLO, RESPONSE, ERROR and MESSAGE packets get no answer. */
          if (p.type == PACKET_TYPE_COMMAND) handle_command(&p);
          break;
        case FRAME_BAD_MAGIC:
          send_error(RESP_BAD_PACKET);
          break;
        case FRAME_BAD_CHECKSUM:
          send_error(RESP_BAD_CHECKSUM);
          break;
        case FRAME_INCOMPLETE:
          break;
      }
    }
    motion_poll();
#if ALEX_WATCHDOG_MS > 0
    if (motion_dir() != DIR_STOP && board_millis() - last_valid_ms > (uint32_t)ALEX_WATCHDOG_MS)
      motion_stop(); /* silently: nothing unsolicited goes on the line */
#else
    (void)last_valid_ms;
#endif
    /* Nothing waiting: sleep until an interrupt (a byte, an encoder tick, the
     * 1 ms clock).  The check and the sleep are atomic. */
    cli();
    if (!uart_available()) {
      board_idle_sleep();
    } else {
      sei();
    }
  }
}
