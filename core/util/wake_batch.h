/* Deferred wake-ups for a thread that completes many tasks in a row.
 *
 * The store writer answers a whole batch of registrations after one
 * commit, each answer a task posted to an event loop; every post to an
 * idle loop wrote its eventfd, so a batch of 20 woke the same two loops
 * up to 20 times.  Between wake_batch_begin and wake_batch_end on a
 * thread, wake_batch_defer records each distinct (fn, target) instead,
 * and wake_batch_end calls each once.  Other threads are not affected. */
#ifndef CORE_UTIL_WAKE_BATCH_H
#define CORE_UTIL_WAKE_BATCH_H

#include <stdbool.h>

#define WAKE_BATCH_MAX 64 /* distinct targets; past that, wake at once */

typedef void wake_batch_fn(void *target);

void wake_batch_begin(void);

/* true when fn(target) will run at wake_batch_end (now or already
 * recorded); false when this thread is not batching or the batch is
 * full: the caller wakes target itself. */
bool wake_batch_defer(wake_batch_fn *fn, void *target);

/* Calls each deferred wake-up once, in the order first recorded. */
void wake_batch_end(void);

#endif
