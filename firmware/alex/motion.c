/* Motors, encoders and counters (see motion.h). */
#include "motion.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "board.h"

/* Counters, in STATUS order. */
enum {
  LEFT_FWD = 0,
  RIGHT_FWD,
  LEFT_REV,
  RIGHT_REV,
  LEFT_FWD_TURNS,
  RIGHT_FWD_TURNS,
  LEFT_REV_TURNS,
  RIGHT_REV_TURNS,
  FWD_DIST,
  REV_DIST,
  COUNTERS
};

static volatile uint32_t counters[COUNTERS];
static volatile uint8_t dir = DIR_STOP;
static uint32_t target; /* cm (forward/reverse) or ticks (turns) */

static uint32_t ticks_to_cm(uint32_t ticks) {
  return ticks * ALEX_WHEEL_CIRC_MM / 10u / ALEX_COUNTS_PER_REV;
}

ISR(INT0_vect) { /* left wheel */
  switch (dir) {
    case DIR_FORWARD:
      ++counters[LEFT_FWD];
      counters[FWD_DIST] = ticks_to_cm(counters[LEFT_FWD]);
      break;
    case DIR_REVERSE:
      ++counters[LEFT_REV];
      counters[REV_DIST] = ticks_to_cm(counters[LEFT_REV]);
      break;
    case DIR_LEFT:
      ++counters[LEFT_REV_TURNS];
      break;
    case DIR_RIGHT:
      ++counters[LEFT_FWD_TURNS];
      break;
    default:
      break;
  }
}

ISR(INT1_vect) { /* right wheel */
  switch (dir) {
    case DIR_FORWARD:
      ++counters[RIGHT_FWD];
      break;
    case DIR_REVERSE:
      ++counters[RIGHT_REV];
      break;
    case DIR_LEFT:
      ++counters[RIGHT_FWD_TURNS];
      break;
    case DIR_RIGHT:
      ++counters[RIGHT_REV_TURNS];
      break;
    default:
      break;
  }
}

static uint32_t counter(uint8_t i) {
  uint32_t v;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    v = counters[i];
  }
  return v;
}

static uint8_t duty_of(uint32_t pct) {
  if (pct > 100u) pct = 100u;
  return (uint8_t)(pct * 255u / 100u);
}

static void drive(uint8_t lf, uint8_t lr, uint8_t rf, uint8_t rr) {
  board_pwm(PIN_LF, lf);
  board_pwm(PIN_LR, lr);
  board_pwm(PIN_RF, rf);
  board_pwm(PIN_RR, rr);
}

static uint32_t turn_ticks(uint32_t deg) {
  if (deg == 0) return UINT32_MAX;
  if (deg > 36000u) deg = 36000u; /* keeps the product within 32 bits */
  return deg * ALEX_TURN_CIRC_MM / 360u * ALEX_COUNTS_PER_REV / ALEX_WHEEL_CIRC_MM;
}

void motion_init(void) {
  DDRD &= (uint8_t) ~((1 << PD2) | (1 << PD3));
  PORTD |= (1 << PD2) | (1 << PD3);    /* pull-ups */
  EICRA = (1 << ISC01) | (1 << ISC11); /* falling edges */
  EIFR = (1 << INTF0) | (1 << INTF1);
  EIMSK = (1 << INT0) | (1 << INT1);
  motion_stop();
}

void motion_forward(uint32_t cm, uint32_t pct) {
  const uint8_t d = duty_of(pct);
  target = cm ? counter(FWD_DIST) + cm : UINT32_MAX;
  dir = DIR_FORWARD;
  drive(d, 0, d, 0);
}

void motion_reverse(uint32_t cm, uint32_t pct) {
  const uint8_t d = duty_of(pct);
  target = cm ? counter(REV_DIST) + cm : UINT32_MAX;
  dir = DIR_REVERSE;
  drive(0, d, 0, d);
}

void motion_left(uint32_t deg, uint32_t pct) {
  const uint8_t d = duty_of(pct);
  const uint32_t t = turn_ticks(deg);
  target = t == UINT32_MAX ? t : counter(LEFT_REV_TURNS) + t;
  dir = DIR_LEFT;
  drive(0, d, d, 0);
}

void motion_right(uint32_t deg, uint32_t pct) {
  const uint8_t d = duty_of(pct);
  const uint32_t t = turn_ticks(deg);
  target = t == UINT32_MAX ? t : counter(LEFT_FWD_TURNS) + t;
  dir = DIR_RIGHT;
  drive(d, 0, 0, d);
}

void motion_stop(void) {
  drive(0, 0, 0, 0);
  dir = DIR_STOP;
}

uint8_t motion_dir(void) {
  return dir;
}

void motion_poll(void) {
  switch (dir) {
    case DIR_FORWARD:
      if (counter(FWD_DIST) >= target) motion_stop();
      break;
    case DIR_REVERSE:
      if (counter(REV_DIST) >= target) motion_stop();
      break;
    case DIR_LEFT:
      if (counter(LEFT_REV_TURNS) >= target) motion_stop();
      break;
    case DIR_RIGHT:
      if (counter(LEFT_FWD_TURNS) >= target) motion_stop();
      break;
    default:
      break;
  }
}

void motion_stats(uint32_t out[10]) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    for (uint8_t i = 0; i < COUNTERS; ++i) out[i] = counters[i];
  }
}

void motion_clear_stats(void) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    for (uint8_t i = 0; i < COUNTERS; ++i) counters[i] = 0;
  }
}
