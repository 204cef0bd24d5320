/* alex-avr: runs an ATmega328P firmware ELF under libsimavr at 16 MHz, paced
 * to real time, with UART0 on a pseudo-terminal, simulated wheel encoders,
 * and one log line per event.
 *
 * Copyright the curvebus authors.
 * SPDX-License-Identifier: GPL-3.0-or-later
 * This program links libsimavr (GPL-3.0-or-later) and is therefore licensed
 * under the GPL, version 3 or later, separately from the rest of curvebus; it
 * is a test tool and nothing else in curvebus links it (see LICENSE-NOTE.md).
 *
 * What it does
 *  - Time: the simulated CPU runs in slices of 0.5 ms of simulated time; after
 *    each slice the runner sleeps until the wall clock has caught up, so one
 *    simulated second takes one real second and the UART's byte times are
 *    real.  If the host falls behind by more than 30 ms (CPU starved) the
 *    difference is forgiven and logged ("pace lag"), instead of racing to
 *    catch up.  The firmware's SLEEP instruction is fast-forwarded by
 *    simavr to the next timer event, the pacing then waits for real.
 *  - UART0: a pseudo-terminal in raw mode.  Bytes the host writes enter the
 *    AVR's receive pin one per byte time (10 bit times for 8N1 at the rate
 *    the firmware set in UBRR0: 1040 us at 9600, 170 us at 57600); bytes the
 *    firmware sends reach the host one byte time after the firmware wrote
 *    them (the end of their stop bit).  simavr's own byte time counts a
 *    parity bit that 8N1 does not have; the runner corrects it.
 *  - Encoders: the duty of the four motor pins (D6 left forward, D5 left
 *    reverse, D10 right forward, D11 right reverse) is read from the timer
 *    and port registers after every slice (non-inverting PWM, or a plain high
 *    or low pin); each wheel's encoder pin (INT0 = D2 left, INT1 = D3 right)
 *    gets a 100 us low pulse at a rate proportional to that wheel's duty.
 *  - Log, one line per event, each starting "t=SECONDS wall_ms=UNIX_MS":
 *      pty /dev/pts/N                       (and "link PATH" with --link)
 *      uart 9615 baud 1040 us per byte
 *      motors forward 60% lf=153 lr=0 rf=153 rr=0   (forward|reverse|left|right|mixed)
 *      motors stopped lf=0 lr=0 rf=0 rr=0
 *      line in COMMAND GET_STATS start=T [after N stray bytes]
 *      line out RESPONSE STATUS start=T
 *      inject stray 1 / inject drop 5
 *      pace lag 42 ms
 *      exit REASON
 *    "line in" frames are what reaches the AVR's receive pin (after injected
 *    strays and drops), found by the magic number; their time is the end of
 *    the last byte.  A motor state is logged once it held for two slices.
 *  - Control FIFO (--control PATH), one command per line:
 *      stray [N] [BYTE]   N bytes (default 1 of 0x55) onto the line now
 *      drop N             the next N bytes from the host are lost on the line
 *      quit
 *  - It runs at nice -10 (--nice N) when allowed, so that a busy machine does
 *    not stall the simulated Uno; stalls that still happen are logged as
 *    "pace lag" and tests can tell them from the firmware's behaviour.
 *  - It stops on SIGTERM, SIGINT, SIGHUP, when its parent process dies, or
 *    when the firmware stops or crashes; it removes its --link on the way out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_cycle_timers.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include "sim_time.h"

/* ATmega328P data-space addresses of the registers the runner reads. */
enum {
  REG_DDRB = 0x24,
  REG_PORTB = 0x25,
  REG_DDRD = 0x2A,
  REG_PORTD = 0x2B,
  REG_TCCR0A = 0x44,
  REG_OCR0A = 0x47,
  REG_OCR0B = 0x48,
  REG_TCCR1A = 0x80,
  REG_OCR1BL = 0x8A,
  REG_TCCR2A = 0xB0,
  REG_OCR2A = 0xB3,
  REG_UCSR0A = 0xC0,
  REG_UCSR0C = 0xC2,
  REG_UBRR0L = 0xC4,
  REG_UBRR0H = 0xC5
};

#define QUEUE_CAP 65536
#define LAG_FORGIVE_US 30000
#define ENCODER_PULSE_US 100

typedef struct {
  uint8_t buf[140];
  int len;
  double start_t;
  long stray;
  const char* name;
} line_decoder;

typedef struct {
  avr_t* avr;
  avr_uart_t* uart;
  avr_irq_t* uart_in;
  avr_irq_t* enc_pin[2];
  FILE* log;
  int master, slave;
  int control_rd, control_wr;
  char link[4096];
  char control_path[4096];

  /* host -> AVR line */
  uint8_t in_q[QUEUE_CAP];
  size_t in_head, in_len;
  int in_busy;
  long drop_pending;
  /* AVR -> host line */
  uint8_t out_q[QUEUE_CAP];
  avr_cycle_count_t out_due[QUEUE_CAP];
  size_t out_head, out_len;
  long out_lost;

  avr_cycle_count_t cycles_per_byte;
  line_decoder dec_in, dec_out;

  /* motors and encoders */
  uint8_t duty[4]; /* lf lr rf rr, as logged */
  uint8_t cand[4]; /* last sample */
  int have_logged;
  double ticks_full; /* encoder ticks per second per wheel at 100% */
  double phase[2];

  /* pacing */
  int pace;
  int64_t t0_us; /* monotonic at start */
  int64_t forgiven_us;
  long lag_events;
  int64_t max_lag_us;
  int64_t stray_after_ms;
  int stray_done;
} runner;

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
  g_stop = sig;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double sim_seconds(const runner* r) {
  return (double)r->avr->cycle / (double)r->avr->frequency;
}

static void logf_(runner* r, const char* fmt, ...) {
  fprintf(r->log, "t=%.4f wall_ms=%lld ", sim_seconds(r), (long long)wall_ms());
  va_list ap;
  va_start(ap, fmt);
  vfprintf(r->log, fmt, ap);
  va_end(ap);
  fputc('\n', r->log);
  fflush(r->log);
}

/* ------------------------------------------------------------ frame names */

static const char* type_name(uint8_t t) {
  static const char* names[] = {"COMMAND", "RESPONSE", "ERROR", "MESSAGE", "HELLO"};
  return t < 5 ? names[t] : "TYPE?";
}

static const char* code_name(uint8_t type, uint8_t code) {
  static const char* commands[] = {"FORWARD", "REVERSE",   "TURN_LEFT",  "TURN_RIGHT",
                                   "STOP",    "GET_STATS", "CLEAR_STATS"};
  static const char* responses[] = {"OK",           "STATUS",      "BAD_PACKET",
                                    "BAD_CHECKSUM", "BAD_COMMAND", "BAD_RESPONSE"};
  if (type == 0) return code < 7 ? commands[code] : "COMMAND?";
  if (type == 1 || type == 2) return code < 6 ? responses[code] : "CODE?";
  return "-";
}

static const uint8_t k_magic[4] = {0xFF, 0xFE, 0xFD, 0xFC};

/* Finds frames in one direction of the line by their magic number. */
static void decode_byte(runner* r, line_decoder* d, uint8_t b) {
  const double t = sim_seconds(r);
  if (d->len < 4) {
    if (b == k_magic[d->len]) {
      if (d->len == 0) d->start_t = t;
      d->buf[d->len++] = b;
    } else if (b == k_magic[0]) {
      d->stray += d->len;
      d->buf[0] = b;
      d->len = 1;
      d->start_t = t;
    } else {
      d->stray += d->len + 1;
      d->len = 0;
    }
    return;
  }
  d->buf[d->len++] = b;
  if (d->len < 140) return;
  uint8_t sum = 0;
  for (int i = 8; i < 108; ++i) sum ^= d->buf[i];
  const uint8_t type = d->buf[8], code = d->buf[9];
  char extra[64] = "";
  if (d->stray) snprintf(extra, sizeof extra, " after %ld stray bytes", d->stray);
  logf_(r, "line %s %s %s start=%.4f%s%s", d->name, type_name(type), code_name(type, code),
        d->start_t, sum == d->buf[136] ? "" : " BAD_CHECKSUM", extra);
  d->len = 0;
  d->stray = 0;
}

/* --------------------------------------------------------------- the UART */

/* The byte time of 8N1 (or what UCSR0C says) at the rate in UBRR0. */
static avr_cycle_count_t wanted_cycles_per_byte(const runner* r) {
  const uint8_t* data = r->avr->data;
  const uint32_t ubrr = data[REG_UBRR0L] | ((uint32_t)(data[REG_UBRR0H] & 0x0F) << 8);
  const int u2x = (data[REG_UCSR0A] >> 1) & 1;
  const uint8_t c = data[REG_UCSR0C];
  const int data_bits = 5 + ((c >> 1) & 3);
  const int parity = ((c >> 4) & 3) ? 1 : 0;
  const int stop_bits = 1 + ((c >> 3) & 1);
  const avr_cycle_count_t cycles_per_bit = (ubrr + 1) * (u2x ? 8 : 16);
  return cycles_per_bit * (avr_cycle_count_t)(1 + data_bits + parity + stop_bits);
}

static void fix_baud(runner* r) {
  const avr_cycle_count_t want = wanted_cycles_per_byte(r);
  if (want == r->cycles_per_byte && r->uart->cycles_per_byte == want) return;
  const int changed = want != r->cycles_per_byte;
  r->cycles_per_byte = want;
  r->uart->cycles_per_byte = want;
  if (changed) {
    const uint8_t* data = r->avr->data;
    const uint32_t ubrr = data[REG_UBRR0L] | ((uint32_t)(data[REG_UBRR0H] & 0x0F) << 8);
    const int u2x = (data[REG_UCSR0A] >> 1) & 1;
    const double baud = (double)r->avr->frequency / ((ubrr + 1) * (u2x ? 8.0 : 16.0));
    logf_(r, "uart %.0f baud %.0f us per byte", baud,
          (double)want * 1e6 / (double)r->avr->frequency);
  }
}

/* Host -> AVR: one byte starts on the line per byte time; simavr raises
 * "receive complete" one byte time after it was handed over. */
static avr_cycle_count_t line_in_tick(avr_t* avr, avr_cycle_count_t when, void* param) {
  runner* r = param;
  (void)avr;
  while (r->in_len) {
    const uint8_t b = r->in_q[r->in_head];
    r->in_head = (r->in_head + 1) % QUEUE_CAP;
    --r->in_len;
    if (r->drop_pending > 0) { /* lost on the line: takes its byte time, arrives nowhere */
      --r->drop_pending;
      return when + r->cycles_per_byte;
    }
    avr_raise_irq(r->uart_in, b);
    decode_byte(r, &r->dec_in, b);
    return when + r->cycles_per_byte;
  }
  r->in_busy = 0;
  return 0;
}

static void line_in_push(runner* r, const uint8_t* bytes, size_t n) {
  for (size_t i = 0; i < n && r->in_len < QUEUE_CAP; ++i) {
    r->in_q[(r->in_head + r->in_len) % QUEUE_CAP] = bytes[i];
    ++r->in_len;
  }
  if (!r->in_busy && r->in_len) {
    r->in_busy = 1;
    avr_cycle_timer_register(r->avr, 1, line_in_tick, r);
  }
}

/* AVR -> host: the firmware wrote UDR0; the byte is on the host side at the
 * end of its byte time. */
static void on_uart_out(struct avr_irq_t* irq, uint32_t value, void* param) {
  runner* r = param;
  (void)irq;
  if (r->out_len == QUEUE_CAP) {
    ++r->out_lost;
    return;
  }
  const size_t at = (r->out_head + r->out_len) % QUEUE_CAP;
  r->out_q[at] = (uint8_t)value;
  r->out_due[at] = r->avr->cycle + r->cycles_per_byte;
  ++r->out_len;
}

static void line_out_deliver(runner* r) {
  uint8_t buf[512];
  size_t n = 0;
  while (r->out_len && r->out_due[r->out_head] <= r->avr->cycle && n < sizeof buf) {
    buf[n] = r->out_q[r->out_head];
    decode_byte(r, &r->dec_out, buf[n]);
    ++n;
    r->out_head = (r->out_head + 1) % QUEUE_CAP;
    --r->out_len;
  }
  if (!n) return;
  const ssize_t w = write(r->master, buf, n);
  if (w < (ssize_t)n) r->out_lost += (long)n - (w > 0 ? w : 0);
}

/* ------------------------------------------------------ motors, encoders */

static uint8_t pin_duty(const uint8_t* data, int ddr, int port, int bit, int tccr, int com_bit,
                        int ocr) {
  if (!(data[ddr] & (1 << bit))) return 0;           /* not an output */
  if (data[tccr] & (1 << com_bit)) return data[ocr]; /* PWM, non-inverting */
  return (data[port] & (1 << bit)) ? 255 : 0;        /* plain pin */
}

static void read_duties(const runner* r, uint8_t d[4]) {
  const uint8_t* data = r->avr->data;
  d[0] = pin_duty(data, REG_DDRD, REG_PORTD, 6, REG_TCCR0A, 7, REG_OCR0A);  /* D6  OC0A */
  d[1] = pin_duty(data, REG_DDRD, REG_PORTD, 5, REG_TCCR0A, 5, REG_OCR0B);  /* D5  OC0B */
  d[2] = pin_duty(data, REG_DDRB, REG_PORTB, 2, REG_TCCR1A, 5, REG_OCR1BL); /* D10 OC1B */
  d[3] = pin_duty(data, REG_DDRB, REG_PORTB, 3, REG_TCCR2A, 7, REG_OCR2A);  /* D11 OC2A */
}

static int pct(int duty) {
  return (duty * 100 + 127) / 255;
}

static void log_motors(runner* r, const uint8_t d[4]) {
  const int left = (int)d[0] - (int)d[1], right = (int)d[2] - (int)d[3];
  const char* what;
  int p = 0;
  if (!d[0] && !d[1] && !d[2] && !d[3]) {
    logf_(r, "motors stopped lf=0 lr=0 rf=0 rr=0");
    return;
  }
  if (left > 0 && right > 0) {
    what = "forward";
    p = pct(d[0] > d[2] ? d[0] : d[2]);
  } else if (left < 0 && right < 0) {
    what = "reverse";
    p = pct(d[1] > d[3] ? d[1] : d[3]);
  } else if (left < 0 && right > 0) {
    what = "left";
    p = pct(d[1] > d[2] ? d[1] : d[2]);
  } else if (left > 0 && right < 0) {
    what = "right";
    p = pct(d[0] > d[3] ? d[0] : d[3]);
  } else {
    what = "mixed";
    p = pct(d[0] > d[2] ? d[0] : d[2]);
  }
  logf_(r, "motors %s %d%% lf=%d lr=%d rf=%d rr=%d", what, p, d[0], d[1], d[2], d[3]);
}

static avr_cycle_count_t encoder_release(avr_t* avr, avr_cycle_count_t when, void* param) {
  (void)avr;
  (void)when;
  avr_raise_irq(param, 1);
  return 0;
}

static void motors_and_encoders(runner* r, double dt) {
  uint8_t d[4];
  read_duties(r, d);
  if (memcmp(d, r->cand, 4) == 0) {
    if (!r->have_logged || memcmp(d, r->duty, 4) != 0) {
      memcpy(r->duty, d, 4);
      r->have_logged = 1;
      log_motors(r, d);
    }
  } else {
    memcpy(r->cand, d, 4);
  }
  /* Wheels turn as the pins say right now (no inertia). */
  for (int w = 0; w < 2; ++w) {
    const int a = d[2 * w], b = d[2 * w + 1];
    const double rate = (a > b ? a : b) / 255.0 * r->ticks_full;
    r->phase[w] += rate * dt;
    if (r->phase[w] >= 1.0) {
      r->phase[w] -= 1.0;
      if (r->phase[w] > 1.0) r->phase[w] = 0; /* more than one tick per slice: not modelled */
      avr_raise_irq(r->enc_pin[w], 0);
      avr_cycle_timer_register_usec(r->avr, ENCODER_PULSE_US, encoder_release, r->enc_pin[w]);
    }
  }
}

/* ---------------------------------------------------------------- control */

static void inject_stray(runner* r, int n, int byte) {
  uint8_t b[256];
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  memset(b, byte, (size_t)n);
  logf_(r, "inject stray %d 0x%02x", n, byte);
  line_in_push(r, b, (size_t)n);
}

static void control_line(runner* r, char* line) {
  char cmd[32] = "";
  long a = -1, b = -1;
  const int k = sscanf(line, "%31s %li %li", cmd, &a, &b);
  if (k < 1) return;
  if (!strcmp(cmd, "stray")) {
    inject_stray(r, a > 0 ? (int)a : 1, b >= 0 ? (int)(b & 0xFF) : 0x55);
  } else if (!strcmp(cmd, "drop")) {
    r->drop_pending += a > 0 ? a : 1;
    logf_(r, "inject drop %ld", a > 0 ? a : 1);
  } else if (!strcmp(cmd, "quit")) {
    g_stop = -1;
  } else {
    logf_(r, "control: unknown command '%s'", cmd);
  }
}

static void read_control(runner* r) {
  static char acc[1024];
  static size_t len = 0;
  char buf[256];
  ssize_t n;
  while (r->control_rd >= 0 && (n = read(r->control_rd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == '\n') {
        acc[len] = 0;
        control_line(r, acc);
        len = 0;
      } else if (len + 1 < sizeof acc) {
        acc[len++] = buf[i];
      }
    }
  }
}

static void read_host(runner* r) {
  uint8_t buf[4096];
  ssize_t n;
  while ((n = read(r->master, buf, sizeof buf)) > 0) line_in_push(r, buf, (size_t)n);
}

/* ------------------------------------------------------------------- main */

static void usage(void) {
  fprintf(
      stderr,
      "usage: alex-avr [--link PATH] [--log FILE] [--control FIFO] [--stray-after-ms MS]\n"
      "                [--wheel-ticks-per-s N] [--nice N] [--mcu NAME] [--freq HZ] [--no-pace]\n"
      "                FIRMWARE.elf\n");
}

static avr_uart_t* find_uart(avr_t* avr, char name) {
  for (avr_io_t* io = avr->io_port; io; io = io->next)
    if (io->kind && !strcmp(io->kind, "uart") && ((avr_uart_t*)io)->name == name)
      return (avr_uart_t*)io;
  return NULL;
}

static void no_sleep(avr_t* avr, avr_cycle_count_t how_long) {
  (void)avr;
  (void)how_long; /* the runner paces time itself */
}

int main(int argc, char** argv) {
  static runner rr;
  runner* r = &rr;
  const char* firmware = NULL;
  const char* log_path = NULL;
  const char* mcu = "atmega328p";
  uint32_t freq = 16000000;
  r->pace = 1;
  r->ticks_full = 400.0;
  r->stray_after_ms = -1;
  int nice_value = -10;
  r->master = r->slave = r->control_rd = r->control_wr = -1;
  r->dec_in.name = "in";
  r->dec_out.name = "out";
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--link") && v) {
      snprintf(r->link, sizeof r->link, "%s", v);
      ++i;
    } else if (!strcmp(a, "--log") && v) {
      log_path = v;
      ++i;
    } else if (!strcmp(a, "--control") && v) {
      snprintf(r->control_path, sizeof r->control_path, "%s", v);
      ++i;
    } else if (!strcmp(a, "--stray-after-ms") && v) {
      r->stray_after_ms = atoll(v);
      ++i;
    } else if (!strcmp(a, "--wheel-ticks-per-s") && v) {
      r->ticks_full = atof(v);
      ++i;
    } else if (!strcmp(a, "--mcu") && v) {
      mcu = v;
      ++i;
    } else if (!strcmp(a, "--freq") && v) {
      freq = (uint32_t)strtoul(v, NULL, 10);
      ++i;
    } else if (!strcmp(a, "--nice") && v) {
      nice_value = atoi(v);
      ++i;
    } else if (!strcmp(a, "--no-pace")) {
      r->pace = 0;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage();
      return 0;
    } else if (a[0] != '-' && !firmware) {
      firmware = a;
    } else {
      usage();
      return 2;
    }
  }
  if (!firmware) {
    usage();
    return 2;
  }

  /* Stop with the parent: a test that dies must not leave us running. */
  const pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  r->log = stdout;
  if (log_path && !(r->log = fopen(log_path, "w"))) {
    fprintf(stderr, "alex-avr: cannot open %s: %s\n", log_path, strerror(errno));
    return 1;
  }

  elf_firmware_t fw;
  memset(&fw, 0, sizeof fw);
  if (elf_read_firmware(firmware, &fw) != 0) {
    fprintf(stderr, "alex-avr: cannot read %s\n", firmware);
    return 1;
  }
  r->avr = avr_make_mcu_by_name(fw.mmcu[0] ? fw.mmcu : mcu);
  if (!r->avr) {
    fprintf(stderr, "alex-avr: unknown MCU %s\n", fw.mmcu[0] ? fw.mmcu : mcu);
    return 1;
  }
  avr_init(r->avr);
  r->avr->log = LOG_ERROR;
  r->avr->frequency = fw.frequency ? fw.frequency : freq;
  avr_load_firmware(r->avr, &fw);
  r->avr->sleep = no_sleep;

  r->uart = find_uart(r->avr, '0');
  if (!r->uart) {
    fprintf(stderr, "alex-avr: the MCU has no UART0\n");
    return 1;
  }
  uint32_t flags = 0; /* no console echo, no polling usleep */
  avr_ioctl(r->avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
  r->uart_in = avr_io_getirq(r->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
  avr_irq_register_notify(avr_io_getirq(r->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
                          on_uart_out, r);
  r->enc_pin[0] = avr_io_getirq(r->avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 2); /* INT0, left */
  r->enc_pin[1] = avr_io_getirq(r->avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 3); /* INT1, right */
  avr_raise_irq(r->enc_pin[0], 1);
  avr_raise_irq(r->enc_pin[1], 1);
  r->cycles_per_byte = wanted_cycles_per_byte(r);

  /* The pseudo-terminal, raw from the start (no echo before the host sets it). */
  char slave_name[256];
  if (openpty(&r->master, &r->slave, slave_name, NULL, NULL) != 0) {
    fprintf(stderr, "alex-avr: openpty: %s\n", strerror(errno));
    return 1;
  }
  struct termios tio;
  tcgetattr(r->slave, &tio);
  cfmakeraw(&tio);
  tcsetattr(r->slave, TCSANOW, &tio);
  fcntl(r->master, F_SETFL, fcntl(r->master, F_GETFL) | O_NONBLOCK);
  fcntl(r->master, F_SETFD, FD_CLOEXEC);
  fcntl(r->slave, F_SETFD, FD_CLOEXEC);
  logf_(r, "pty %s", slave_name);
  /* A real Uno never stalls: ask for more CPU than the processes around it
   * (needs CAP_SYS_NICE for a negative value; without it, the default). */
  errno = 0;
  if (setpriority(PRIO_PROCESS, 0, nice_value) == 0)
    logf_(r, "nice %d", nice_value);
  else
    logf_(r, "nice unchanged (%s)", strerror(errno));

  if (r->control_path[0]) {
    unlink(r->control_path);
    if (mkfifo(r->control_path, 0600) != 0) {
      fprintf(stderr, "alex-avr: mkfifo %s: %s\n", r->control_path, strerror(errno));
      return 1;
    }
    r->control_rd = open(r->control_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    r->control_wr = open(r->control_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* never EOF */
  }
  if (r->link[0]) {
    struct stat st;
    if (lstat(r->link, &st) == 0 && S_ISLNK(st.st_mode)) unlink(r->link);
    if (symlink(slave_name, r->link) != 0) {
      fprintf(stderr, "alex-avr: symlink %s: %s\n", r->link, strerror(errno));
      return 1;
    }
    logf_(r, "link %s", r->link);
  }

  const avr_cycle_count_t slice = r->avr->frequency / 2000; /* 0.5 ms */
  const char* why = NULL;
  int rc = 0;
  r->t0_us = mono_us();
  while (!g_stop) {
    const avr_cycle_count_t start = r->avr->cycle, end = start + slice;
    while (r->avr->cycle < end) {
      const int st = avr_run(r->avr);
      if (st == cpu_Done || st == cpu_Crashed) {
        why = st == cpu_Done ? "firmware stopped" : "firmware crashed";
        rc = 3;
        goto out;
      }
    }
    fix_baud(r);
    line_out_deliver(r);
    motors_and_encoders(r, (double)(r->avr->cycle - start) / (double)r->avr->frequency);
    if (r->stray_after_ms >= 0 && !r->stray_done &&
        sim_seconds(r) * 1000.0 >= (double)r->stray_after_ms) {
      r->stray_done = 1;
      inject_stray(r, 1, 0x55);
    }

    /* Pace: wait (for host bytes or control lines) until the wall clock
     * reaches the simulated time. */
    const int64_t sim_us = (int64_t)avr_cycles_to_usec(r->avr, r->avr->cycle);
    int64_t ahead = sim_us - (mono_us() - r->t0_us - r->forgiven_us);
    if (!r->pace) ahead = 0;
    if (ahead < -LAG_FORGIVE_US) {
      r->forgiven_us += -ahead;
      ++r->lag_events;
      if (-ahead > r->max_lag_us) r->max_lag_us = -ahead;
      logf_(r, "pace lag %lld ms", (long long)(-ahead / 1000));
      ahead = 0;
    }
    struct pollfd fds[2] = {{r->master, POLLIN, 0}, {r->control_rd, POLLIN, 0}};
    while (ahead > 0) {
      const struct timespec ts = {ahead / 1000000, (ahead % 1000000) * 1000};
      if (ppoll(fds, r->control_rd >= 0 ? 2 : 1, &ts, NULL) <= 0) break;
      /* Input before the simulated time is reached: take it now (it enters
       * the line at the current simulated time, at most one slice early). */
      read_host(r);
      read_control(r);
      ahead = sim_us - (mono_us() - r->t0_us - r->forgiven_us);
    }
    read_host(r);
    read_control(r);
    if (getppid() != parent) {
      why = "parent died";
      break;
    }
  }
out:;
  char signal_why[32];
  if (g_stop == -1) {
    why = "quit";
  } else if (!why) {
    snprintf(signal_why, sizeof signal_why, "signal %d", (int)g_stop);
    why = signal_why;
  }
  logf_(r, "exit %s lag_events=%ld max_lag_ms=%lld out_lost=%ld", why, r->lag_events,
        (long long)(r->max_lag_us / 1000), r->out_lost);
  if (r->link[0]) unlink(r->link);
  if (r->control_path[0]) unlink(r->control_path);
  avr_terminate(r->avr);
  free(fw.flash);
  free(fw.eeprom);
  free(fw.fuse);
  free(fw.lockbits);
  return rc;
}
