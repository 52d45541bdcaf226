/* Hub connectors follow the journal: the dispatcher (dispatch.h) runs
 * every hub connector instance like a notifier, with this adapter as its
 * deliver op.  An instance serves the linked hub whose name is its
 * instance id; hubs without one are record only (connector `none`).
 *
 * For each event about a registration (device.assigned,
 * device.reprovisioned, registration.deleted, enrollment.updated|deleted)
 * or a group (group.updated|deleted: every registration of the group),
 * the adapter reads the current state and reconciles: a registration
 * that is assigned to this hub, whose enrollment exists and is enabled,
 * gets ensure_device; any other gets remove_device.  Reading the state
 * instead of trusting the event makes redelivery and reordering harmless,
 * and the connector ops are idempotent. */
#ifndef CORE_NOTIFY_HUB_SYNC_H
#define CORE_NOTIFY_HUB_SYNC_H

#include "plugin/loader.h"
#include "provd/notifier.h"
#include "store/store.h"

struct hub_link;

/* Borrowed inst and st outlive the link.  NULL when out of memory. */
struct hub_link *hub_link_new(struct plugin_instance *inst, struct store *st);
void hub_link_free(struct hub_link *l);

/* 1 when an event of `type` may change what a hub must know. */
int hub_sync_wants(const char *type);

/* deliver() takes the hub_link as its state. */
const struct provd_notifier_ops *hub_sync_ops(void);

#endif
