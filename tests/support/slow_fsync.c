/* Test shim, loaded with LD_PRELOAD: fsync() and fdatasync() first sleep
 * CURVEBUS_TEST_FSYNC_DELAY_MS milliseconds (default 0), then call the real
 * function, so a test can show that work which must not wait for the disk
 * (the broker's routing thread) does not.  errno is that of the real call. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*sync_fn)(int);

static sync_fn resolve(const char* name) {
  sync_fn fn = NULL;
  void* sym = dlsym(RTLD_NEXT, name);
  memcpy(&fn, &sym, sizeof fn); /* ISO C has no cast from object to function pointer */
  return fn;
}

static void pause_configured(void) {
  const char* text = getenv("CURVEBUS_TEST_FSYNC_DELAY_MS");
  long ms = text ? strtol(text, NULL, 10) : 0;
  struct timespec left;
  if (ms <= 0) return;
  left.tv_sec = ms / 1000;
  left.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

int fsync(int fd) {
  sync_fn real = resolve("fsync");
  pause_configured();
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd);
}

int fdatasync(int fd) {
  sync_fn real = resolve("fdatasync");
  pause_configured();
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd);
}
