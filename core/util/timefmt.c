#include "util/timefmt.h"

#include <stdio.h>
#include <time.h>

int64_t time_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t time_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t time_mono_ms(void)
{
  return time_mono_ns() / 1000000u;
}

struct timespec time_after_us(clockid_t clock, int64_t us)
{
  struct timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_sec += (time_t)(us / 1000000);
  ts.tv_nsec += (long)(us % 1000000) * 1000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

void time_iso8601(int64_t unix_ms, char out[32])
{
  time_t secs = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000) * 10000);
}
