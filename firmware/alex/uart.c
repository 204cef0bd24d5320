/* UART0 with interrupt-driven rings (see uart.h for the contract). */
#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <util/atomic.h>

#include "board.h"

static volatile uint8_t rx_ring[UART_RX_RING];
static volatile uint8_t rx_head; /* written by the interrupt */
static volatile uint8_t rx_tail; /* written by the main loop */
static volatile uint16_t rx_dropped;

static volatile uint8_t tx_ring[UART_TX_RING];
static volatile uint8_t tx_head; /* written by the main loop */
static volatile uint8_t tx_tail; /* written by the interrupt */

void uart_init(uint32_t baud) {
  /* Single speed: UBRR = F_CPU / (16 * baud) - 1, rounded: 103 at 9600 (9615
   * bit/s), 16 at 57600 (58824 bit/s, the Arduino core's choice for 57600 at
   * 16 MHz). */
  const uint16_t ubrr = (uint16_t)((F_CPU / 8 / baud - 1) / 2);
  UBRR0H = (uint8_t)(ubrr >> 8);
  UBRR0L = (uint8_t)ubrr;
  UCSR0A = 0;
  UCSR0C = (1 << UCSZ01) | (1 << UCSZ00); /* 8 data bits, no parity, 1 stop bit */
  UCSR0B = (1 << RXEN0) | (1 << TXEN0) | (1 << RXCIE0);
}

ISR(USART_RX_vect) {
  const uint8_t c = UDR0;
  const uint8_t next = (uint8_t)((rx_head + 1) % UART_RX_RING);
  if (next != rx_tail) {
    rx_ring[rx_head] = c;
    rx_head = next;
  } else {
    ++rx_dropped; /* ring full: the byte is lost, as on a real Uno */
  }
}

ISR(USART_UDRE_vect) {
  const uint8_t c = tx_ring[tx_tail];
  tx_tail = (uint8_t)((tx_tail + 1) % UART_TX_RING);
  UDR0 = c;
  if (tx_head == tx_tail) UCSR0B &= (uint8_t) ~(1 << UDRIE0);
}

uint8_t uart_available(void) {
  uint8_t n;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    n = (uint8_t)((UART_RX_RING + rx_head - rx_tail) % UART_RX_RING);
  }
  return n;
}

uint8_t uart_read(void) {
  const uint8_t c = rx_ring[rx_tail];
  rx_tail = (uint8_t)((rx_tail + 1) % UART_RX_RING);
  return c;
}

void uart_write(uint8_t byte) {
  /* Fast path: nothing queued and the data register empty. */
  if (tx_head == tx_tail && (UCSR0A & (1 << UDRE0))) {
    UDR0 = byte;
    return;
  }
  const uint8_t next = (uint8_t)((tx_head + 1) % UART_TX_RING);
  /* Ring full: wait for the interrupt to make room (the loop is stuck here,
   * reading nothing, as the Arduino core's write is). */
  for (;;) {
    cli();
    if (next != tx_tail) break;
    board_idle_sleep(); /* returns with interrupts enabled */
  }
  sei();
  tx_ring[tx_head] = byte;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    tx_head = next;
    UCSR0B |= (1 << UDRIE0);
  }
}

uint16_t uart_rx_dropped(void) {
  uint16_t n;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    n = rx_dropped;
  }
  return n;
}
