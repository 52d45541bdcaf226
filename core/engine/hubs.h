/* Linked hubs at run time: the store's `hubs` table is their source of
 * truth (the config's `hubs:` only seed an empty table), and the engine
 * holds a snapshot that every change replaces.
 *
 * A hub record's body: {"name", "hostname", "weight", "applyAllocationPolicy",
 * "region" (string or null), "removed" (bool)}.  Removing a hub keeps the
 * record (removed: true) so its devices' registrations still name a hub. */
#ifndef CORE_ENGINE_HUBS_H
#define CORE_ENGINE_HUBS_H

#include <jansson.h>

#include "config/config.h"
#include "engine/engine.h"
#include "store/store.h"

/* Writes the config's hubs when the table is empty (first start). */
int hubs_seed(struct store_session *s, const struct provd_config *cfg,
              struct provd_err *err);

/* Every hub record's body, by name; *out is a new array (caller frees). */
int hubs_read_all(struct store_session *s, json_t **out,
                  struct provd_err *err);

/* Hands the records (hubs_read_all's shape) to the engine's allocator. */
int hubs_apply(struct engine *e, const json_t *records,
               struct provd_err *err);

/* hubs_read_all + hubs_apply in one session. */
int hubs_reload(struct store_session *s, struct engine *e,
                struct provd_err *err);

#endif
