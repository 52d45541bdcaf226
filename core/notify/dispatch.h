/* The event dispatcher: delivers journal events to every notifier
 * instance, off the event loops.
 *
 * Per instance: a pump thread reads the journal after the instance's
 * durable cursor, drops the event types its `events:` filter does not
 * name, and hands the rest to `events.concurrency` lane threads; a
 * subject always maps to the same lane, so its events are delivered in
 * journal order.  Temporary failures are retried with exponential
 * backoff and jitter (or the receiver's Retry-After); an event that
 * fails permanently, or is still undelivered after `events.max_age`,
 * becomes a dead letter.  The cursor advances over the oldest finished
 * events and is written to the store after delivery, so a crash
 * delivers again (at least once; receivers deduplicate on the event id)
 * and never skips.  At most `events.queue` events per instance are held
 * in memory. */
#ifndef CORE_NOTIFY_DISPATCH_H
#define CORE_NOTIFY_DISPATCH_H

#include "config/config.h"
#include "plugin/loader.h"
#include "store/store.h"

struct dispatcher;

/* Starts one pump and its lanes per notifier instance in `plugins`, and
 * the journal retention when `cfg` asks for it.  All borrowed pointers
 * must outlive dispatcher_stop(). */
int dispatcher_start(const struct cfg_events *cfg, struct store *st,
                     const struct plugin_set *plugins,
                     struct dispatcher **out, struct provd_err *err);
/* Stops every thread (deliveries in backoff are abandoned and come again
 * after the next start), writes the cursors, frees.  NULL is fine. */
void dispatcher_stop(struct dispatcher *d);

/* The id of the dead letter of (instance, seq), as stored in
 * PROVD_TABLE_DEAD_LETTERS. */
#define DEAD_LETTER_ID_MAX 96
void dead_letter_id(const char *instance, uint64_t seq,
                    char out[DEAD_LETTER_ID_MAX]);

#endif
