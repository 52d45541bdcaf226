/* Hub connector health: a thread asks every hub connector instance's
 * health op every few seconds.  A hub whose connector fails is taken out
 * of allocation (engine_set_hub_health) and a `hub.unhealthy` event goes
 * into the journal; once the connector answers again the hub takes new
 * devices again (logged, no event). */
#ifndef CORE_ENGINE_HUB_HEALTH_H
#define CORE_ENGINE_HUB_HEALTH_H

#include "engine/engine.h"
#include "plugin/loader.h"
#include "store/store.h"

#define HUB_HEALTH_INTERVAL_MS 2000

struct hub_health;

/* Borrowed pointers outlive hub_health_stop.  *out is NULL (and the call
 * succeeds) when no hub connector has a health op. */
int hub_health_start(struct store *st, struct engine *e,
                     const struct plugin_set *plugins, int interval_ms,
                     struct hub_health **out, struct provd_err *err);
void hub_health_stop(struct hub_health *h);

#endif
