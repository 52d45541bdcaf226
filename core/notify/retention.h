/* Journal retention: a thread that deletes the oldest events by age or
 * count (`events.retain_age`, `events.retain_count`), never one that a
 * notifier instance has not finished (its stored cursor), keeping the
 * chain verifiable from its anchor (store/journal.h). */
#ifndef CORE_NOTIFY_RETENTION_H
#define CORE_NOTIFY_RETENTION_H

#include <stddef.h>

#include "config/config.h"
#include "store/store.h"

struct retention;

/* NULL in *out (and PROVD_OK) when cfg asks for no retention.  ids (the
 * notifier instances) are copied. */
int retention_start(const struct cfg_events *cfg, struct store *st,
                    char *const *ids, size_t n_ids, struct retention **out,
                    struct provd_err *err);
void retention_stop(struct retention *r); /* NULL is fine */

#endif
