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

#endif
