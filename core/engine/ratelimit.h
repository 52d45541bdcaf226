/* Registration rate limits per key (a registration id, a source address):
 * at most `per_minute` admissions per key in each one-minute window,
 * which starts at the key's first admission (not at a clock minute, so a
 * burst cannot straddle two windows and get twice the rate).  The table has a fixed number of slots, so memory is bounded
 * whatever the number of keys: when every slot a key may use is held by
 * another key in its current window, the stalest is reused (that key's
 * count starts over, failing open rather than refusing a device no table
 * remembers).  Thread-safe. */
#ifndef CORE_ENGINE_RATELIMIT_H
#define CORE_ENGINE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rate_table;

/* slots is rounded up to a power of two; NULL when out of memory. */
struct rate_table *rate_table_new(size_t slots, uint32_t per_minute);
void rate_table_free(struct rate_table *t);

/* Counts one registration of key at now_s; false when the key had its
 * per_minute already in this window.  Keys compare case-insensitively
 * (registration ids do). */
bool rate_table_admit(struct rate_table *t, const char *key, int64_t now_s);

#endif
