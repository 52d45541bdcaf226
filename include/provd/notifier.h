/* Notifier plugins: deliver one event from the core's durable outbox.
 *
 * The core's dispatcher calls deliver() on its own threads (never on an
 * event loop), at least once per event and instance: after a crash or a
 * temporary failure the same event comes again, with the same `id` and
 * `event_id`, so receivers deduplicate on them.  Events of one subject
 * arrive one after another, in journal order.  Ops of one instance run
 * one at a time unless the plugin is PROVD_PLUGIN_THREADSAFE. */
#ifndef PROVD_NOTIFIER_H
#define PROVD_NOTIFIER_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

struct provd_event {
  uint32_t struct_size;
  uint64_t id;             /* outbox sequence number, idempotency key */
  const char *type;        /* "device.assigned", "enrollment.created", ... */
  int64_t time_ms;         /* when it happened, Unix ms */
  const char *registration_id; /* or enrollment group id; may be NULL */
  const char *body_json;   /* the event's details as a JSON object */
  /* ABI minor 3 */
  const char *event_id;    /* unique id (uuid) of the event */
  /* Only for plugins whose ops set PROVD_NOTIFIER_WANTS_RECORD: the
   * enrollment (group.* events: the enrollment group) the event is
   * about, as stored at delivery time, keys included; NULL when there is
   * none.  Never log it. */
  const char *record_json;
};

/* The plugin reads event->record_json (e.g. to mail a device its keys). */
#define PROVD_NOTIFIER_WANTS_RECORD (1u << 0)

struct provd_notifier_ops {
  uint32_t struct_size;
  /* PROVD_OK delivered; PROVD_E_UNAVAILABLE / PROVD_E_TIMEOUT a
   * temporary failure; PROVD_E_INVAL an event that can never be
   * delivered (dead letter at once).  A receiver that asked for a pause
   * (HTTP Retry-After) is reported with host->call_set_retry_after. */
  int (*deliver)(void *state, struct provd_call *call,
                 const struct provd_event *ev, struct provd_err *err);
  /* ABI minor 3: PROVD_NOTIFIER_* */
  uint32_t flags;
};

#ifdef __cplusplus
}
#endif
#endif /* PROVD_NOTIFIER_H */
