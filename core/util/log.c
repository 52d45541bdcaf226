#include "util/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(int level)
{
  if (level >= LOG_ERROR && level <= LOG_DEBUG)
    atomic_store(&current_level, level);
}

int log_get_level(void) { return atomic_load(&current_level); }

int log_level_parse(const char *name)
{
  for (int i = LOG_ERROR; i <= LOG_DEBUG; i++)
    if (name && strcmp(name, level_names[i]) == 0)
      return i;
  return -1;
}

/* Info and debug lines a thread logs inside a batch wait here and leave
 * together; whole lines only, so threads still never interleave. */
#define BATCH_BYTES 16384
static _Thread_local struct {
  int on;
  size_t len;
  char buf[BATCH_BYTES];
} batch;

static void batch_flush(void)
{
  if (batch.len > 0) {
    ssize_t w = write(STDERR_FILENO, batch.buf, batch.len);
    (void)w;
  }
  batch.len = 0;
}

void log_batch_begin(void) { batch.on = 1; }

void log_batch_end(void)
{
  batch_flush();
  batch.on = 0;
}

/* One write(2) per line (or per batch of whole lines) so lines from
 * different threads never interleave. */
void log_vmsg(int level, const char *component, const char *fmt, va_list ap)
{
  if (level > atomic_load(&current_level) || level < LOG_ERROR)
    return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof(line),
                   "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   level_names[level], component ? component : "provd");
  if (n < 0)
    return;
  if ((size_t)n < sizeof(line) - 1) {
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m > 0)
      n += m;
  }
  if ((size_t)n > sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  /* Control characters from untrusted input must not forge log lines. */
  for (int i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  line[n++] = '\n';
  if (batch.on && level > LOG_WARN) {
    if (batch.len + (size_t)n > sizeof(batch.buf))
      batch_flush();
    memcpy(batch.buf + batch.len, line, (size_t)n);
    batch.len += (size_t)n;
    return;
  }
  batch_flush(); /* a warning or error keeps its place, and leaves now */
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}

void log_msg(int level, const char *component, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(level, component, fmt, ap);
  va_end(ap);
}
