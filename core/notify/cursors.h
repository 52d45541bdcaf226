/* Notifier cursors: per instance, the journal seq up to which every event
 * is finished (delivered, filtered out or a dead letter), stored in
 * PROVD_TABLE_NOTIFIER_CURSORS under the instance id. */
#ifndef CORE_NOTIFY_CURSORS_H
#define CORE_NOTIFY_CURSORS_H

#include <stdint.h>

#include "store/store.h"

/* The stored cursor of instance `id`; 0 when it has none (a new instance
 * starts at the beginning of the journal). */
uint64_t notify_cursor_load(struct store_session *s, const char *id);

/* A store_write_fn: writes cursor_write.cursor for cursor_write.id. */
struct cursor_write {
  const char *id;
  uint64_t cursor;
};
int notify_cursor_put(struct store_session *s, void *cursor_write,
                      struct provd_err *err);

/* Several instances on one store (store_shared): one of them at a time
 * holds a notifier's lease, stored in its cursor record beside the
 * cursor, and only the holder delivers.  A lease not renewed for
 * lease_ms (its instance died or stalled) may be taken by another, which
 * goes on from the stored cursor. */
struct cursor_lease {
  const char *id;      /* notifier instance id */
  const char *owner;   /* this process */
  int64_t lease_ms;    /* 0: give the lease up */
  int advance;         /* write `cursor` (only while holding the lease) */
  uint64_t cursor;
  /* out */
  int held;            /* this process holds the lease now */
  int taken;           /* it did not before: go on from `stored` */
  uint64_t stored;     /* the cursor as stored */
};
/* A store_write_fn: takes, renews (and advances) or gives up the lease.
 * Writes nothing while another live instance holds it (held = 0). */
int notify_cursor_lease(struct store_session *s, void *cursor_lease,
                        struct provd_err *err);

#endif
