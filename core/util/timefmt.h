/* Wall-clock helpers for the wire formats. */
#ifndef CORE_UTIL_TIMEFMT_H
#define CORE_UTIL_TIMEFMT_H

#include <stdint.h>
#include <time.h>

int64_t time_now_ms(void);
uint64_t time_mono_ns(void);
uint64_t time_mono_ms(void);
/* The time us microseconds from now on `clock`, as the absolute
 * deadline pthread_cond_timedwait (CLOCK_REALTIME) and clock_nanosleep
 * (TIMER_ABSTIME) take. */
struct timespec time_after_us(clockid_t clock, int64_t us);
/* ISO-8601 UTC with 7 fractional digits, as DPS sends:
 * "2022-08-31T22:02:50.5163352Z".  out needs 29 bytes. */
void time_iso8601(int64_t unix_ms, char out[32]);

#endif
