/* Notifier plugins: deliver one event from the core's durable outbox.
 * provd 0.1 loads and configures notifiers but does not call deliver
 * yet (docs/plugin-abi.md section 4).  `id` identifies the event in the
 * outbox, so receivers can deduplicate on it. */
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
  const char *body_json;   /* the event as JSON */
};

struct provd_notifier_ops {
  uint32_t struct_size;
  /* PROVD_OK delivered; PROVD_E_UNAVAILABLE / PROVD_E_TIMEOUT a
   * temporary failure; PROVD_E_INVAL an event that can never be
   * delivered. */
  int (*deliver)(void *state, struct provd_call *call,
                 const struct provd_event *ev, struct provd_err *err);
};

#ifdef __cplusplus
}
#endif
#endif /* PROVD_NOTIFIER_H */
