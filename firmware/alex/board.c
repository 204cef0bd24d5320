/* Timers, PWM and sleep (see board.h). */
#include "board.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <util/atomic.h>

static volatile uint32_t overflows; /* timer 0 overflows, one per 1.024 ms */

ISR(TIMER0_OVF_vect) {
  ++overflows;
}

void board_init(void) {
  /* Motor pins are outputs, driven low. */
  PORTD &= (uint8_t) ~((1 << PD6) | (1 << PD5));
  PORTB &= (uint8_t) ~((1 << PB2) | (1 << PB3));
  DDRD |= (1 << PD6) | (1 << PD5);
  DDRB |= (1 << PB2) | (1 << PB3);

  /* Timer 0: fast PWM, clk/64, overflow interrupt for the clock. */
  TCCR0A = (1 << WGM01) | (1 << WGM00);
  TCCR0B = (1 << CS01) | (1 << CS00);
  TIMSK0 = (1 << TOIE0);
  /* Timer 1: 8-bit fast PWM, clk/64. */
  TCCR1A = (1 << WGM10);
  TCCR1B = (1 << WGM12) | (1 << CS11) | (1 << CS10);
  /* Timer 2: fast PWM, clk/64. */
  TCCR2A = (1 << WGM21) | (1 << WGM20);
  TCCR2B = (1 << CS22);

  set_sleep_mode(SLEEP_MODE_IDLE);
}

uint32_t board_millis(void) {
  uint32_t n;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    n = overflows;
  }
  return n * 128u / 125u; /* 1.024 ms each */
}

/* Connects (duty 1..254) or disconnects (0, 255) the pin's compare output. */
static void pwm_set(volatile uint8_t* tccr, uint8_t com_bit, volatile uint8_t* ocr,
                    volatile uint8_t* port, uint8_t port_bit, uint8_t duty) {
  if (duty == 0 || duty == 255) {
    *tccr &= (uint8_t) ~(1 << com_bit);
    if (duty) {
      *port |= (uint8_t)(1 << port_bit);
    } else {
      *port &= (uint8_t) ~(1 << port_bit);
    }
  } else {
    *ocr = duty;
    *tccr |= (uint8_t)(1 << com_bit);
  }
}

void board_pwm(uint8_t pin, uint8_t duty) {
  switch (pin) {
    case PIN_LF:
      pwm_set(&TCCR0A, COM0A1, &OCR0A, &PORTD, PD6, duty);
      break;
    case PIN_LR:
      pwm_set(&TCCR0A, COM0B1, &OCR0B, &PORTD, PD5, duty);
      break;
    case PIN_RF:
      pwm_set(&TCCR1A, COM1B1, &OCR1BL, &PORTB, PB2, duty);
      break;
    case PIN_RR:
      pwm_set(&TCCR2A, COM2A1, &OCR2A, &PORTB, PB3, duty);
      break;
    default:
      break;
  }
}

void board_idle_sleep(void) {
  sleep_enable();
  sei(); /* the instruction after SEI runs before any interrupt: no lost wake-up */
  sleep_cpu();
  sleep_disable();
}
