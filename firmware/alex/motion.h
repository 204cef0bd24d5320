/* Alex's motion: the four motor outputs, the wheel encoders and the course's
 * ten counters (protocol specification 5.2, 5.3).
 *
 *  - Encoders: left wheel on INT0 (D2), right wheel on INT1 (D3), one tick per
 *    falling edge, counted into the bucket of the current direction.
 *  - forward/reverse drive both wheels at `pct` percent and stop by
 *    themselves once the distance travelled in that direction reaches the
 *    start value + `cm` (0 = keep going).  Turns spin in place and stop after
 *    the tick count for `deg` degrees (0 = keep turning).
 *  - motion_poll() from the main loop applies those stops (and nothing else).
 *
 * Main loop only; the counters are updated by the encoder interrupts. */
#ifndef ALEX_MOTION_H
#define ALEX_MOTION_H

#include <stdint.h>

/* Robot geometry used for distances and turns. */
#define ALEX_COUNTS_PER_REV 192u /* encoder ticks per wheel turn */
#define ALEX_WHEEL_CIRC_MM 200u  /* wheel circumference */
#define ALEX_TURN_CIRC_MM 537u   /* circle the wheels follow turning in place (pi x diagonal) */

enum { DIR_STOP = 0, DIR_FORWARD, DIR_REVERSE, DIR_LEFT, DIR_RIGHT };

/* Configures INT0/INT1 (falling edge, pull-ups).  Motors off. */
void motion_init(void);
void motion_forward(uint32_t cm, uint32_t pct);
void motion_reverse(uint32_t cm, uint32_t pct);
void motion_left(uint32_t deg, uint32_t pct);
void motion_right(uint32_t deg, uint32_t pct);
void motion_stop(void);
uint8_t motion_dir(void);
/* Stops the motors once the distance or angle target is reached. */
void motion_poll(void);
/* The ten counters in the order of the STATUS reply's params[0..9]. */
void motion_stats(uint32_t out[10]);
void motion_clear_stats(void);

#endif
