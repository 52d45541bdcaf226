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

#define WAKE_BATCH_MAX 64 /* distinct targets; past that, wake at once */

typedef void wake_batch_fn(void *target);

enum wake_batch_result {
  WAKE_NOW,      /* not batching, or the batch is full: wake it yourself */
  WAKE_DEFERRED, /* recorded: fn(target) runs once at wake_batch_end */
  WAKE_ALREADY_DEFERRED, /* recorded before in this batch */
};

void wake_batch_begin(void);

/* A target that must outlive the batch (memory another thread may free)
 * needs a hold taken on WAKE_DEFERRED and released by fn. */
enum wake_batch_result wake_batch_defer(wake_batch_fn *fn, void *target);

/* Calls each deferred wake-up once, in the order first recorded. */
void wake_batch_end(void);

#endif
