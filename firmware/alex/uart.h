/* UART0 of the ATmega328P driven the way the Arduino AVR core's
 * HardwareSerial drives it, with rings of the same sizes, so that the host
 * sees the buffering and timing of a real Uno:
 *
 *  - receive: a 64-byte ring filled by the RX-complete interrupt.  It holds
 *    at most 63 bytes (one slot stays free); a byte that arrives while it is
 *    full is dropped.
 *  - transmit: a 64-byte ring drained by the data-register-empty interrupt.
 *    When the line is idle and the ring empty, a byte goes straight to the
 *    data register; otherwise it is queued, and uart_write() WAITS while the
 *    ring is full (63 bytes).  A 140-byte reply therefore keeps the caller
 *    away from the receive side for about 140 - 64 byte times.
 *
 * Single-threaded main loop plus interrupts: call the functions from the main
 * loop only (not from an interrupt handler). */
#ifndef ALEX_UART_H
#define ALEX_UART_H

#include <stdint.h>

#define UART_RX_RING 64
#define UART_TX_RING 64

/* 8N1 at `baud` bit/s (9600 or 57600 at 16 MHz, the Arduino core's settings:
 * UBRR 103 or 16, single speed).  Enables the receiver, the transmitter and
 * the receive interrupt; interrupts must be enabled globally by the caller. */
void uart_init(uint32_t baud);
/* Bytes waiting in the receive ring (0..63). */
uint8_t uart_available(void);
/* The oldest received byte; call only when uart_available() > 0. */
uint8_t uart_read(void);
/* Queues one byte for sending, waiting (idle-sleeping) while the ring is full. */
void uart_write(uint8_t byte);
/* Bytes the receive interrupt had to drop because the ring was full. */
uint16_t uart_rx_dropped(void);

#endif
