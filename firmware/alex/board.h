/* The Uno board as Alex uses it: the millisecond clock (timer 0 overflow),
 * PWM on the four motor pins, and idle sleep.
 *
 * Motor pins (the course skeleton's): left forward D6 (OC0A), left reverse D5
 * (OC0B), right forward D10 (OC1B), right reverse D11 (OC2A).  All three
 * timers run 8-bit fast PWM at 16 MHz / 64 / 256 = 977 Hz.  A duty of 0 or 255
 * disconnects the pin from its timer and drives it low or high, as the
 * Arduino core's analogWrite does.
 *
 * Main loop only, except board_millis() which is safe anywhere. */
#ifndef ALEX_BOARD_H
#define ALEX_BOARD_H

#include <stdint.h>

enum { PIN_LF = 0, PIN_LR = 1, PIN_RF = 2, PIN_RR = 3 };

/* Timers, PWM outputs (all off) and sleep mode.  Interrupts stay disabled. */
void board_init(void);
/* Milliseconds since board_init(), wrapping after 49 days. */
uint32_t board_millis(void);
/* Sets one motor pin's duty, 0..255. */
void board_pwm(uint8_t pin, uint8_t duty);
/* Call with interrupts DISABLED: sleeps (idle mode) until the next interrupt
 * and returns with interrupts enabled.  The pending-interrupt check and the
 * sleep are atomic, so a wake-up cannot be missed. */
void board_idle_sleep(void);

#endif
