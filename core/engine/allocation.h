/* Allocation (DPS §"allocation policies"): which hub a registration gets.
 *
 *   policy      the enrollment's allocationPolicy, else
 *               registration.allocation_policy, else the first allocation
 *               plugin declared
 *   candidates  the enrollment's iotHubs (legacy iotHubHostName), else every
 *               configured hub; hubs with apply_allocation_policy: false or
 *               weight 0 get no new devices
 *   plugin      the policy's plugin picks one, or hands the choice to
 *               another policy (alloc_delegate: geoLatency ties, webhook
 *               fallbacks), once
 *
 * Every step is written into a trace for `provctl explain`
 * (alloc_input.want_trace). */
#ifndef CORE_ENGINE_ALLOCATION_H
#define CORE_ENGINE_ALLOCATION_H

#include <jansson.h>

#include "config/config.h"
#include "plugin/loader.h"
#include "provd/alloc.h"

struct allocator;

/* PROVD_E_CONFIG when registration.allocation_policy names a policy no
 * declared plugin implements. */
int allocator_new(const struct provd_config *cfg, struct plugin_set *plugins,
                  struct allocator **out, struct provd_err *err);
void allocator_free(struct allocator *a);

/* One linked hub as the store or the config describes it. */
struct alloc_hub {
  const char *name;
  const char *hostname;
  int weight;                  /* 0: drained */
  int apply_allocation_policy; /* 0: no new devices */
  int removed;                 /* 1: kept only for its devices' records */
  const char *region;          /* `provctl hub --region`, or NULL */
};

/* Replaces the linked hubs (copied) for every later allocation; safe while
 * registrations run on other threads.  PROVD_E_INVAL beyond
 * ALLOC_MAX_HUBS. */
int allocator_set_hubs(struct allocator *a, const struct alloc_hub *hubs,
                       size_t n, struct provd_err *err);

/* Marks the linked hub `name` down (healthy 0) or back up: allocations
 * skip a hub that is down.  Any thread. */
#define PROVD_HUB_NAME_MAX 128
void allocator_set_hub_health(struct allocator *a, const char *name,
                              int healthy);

/* 1 when an allocation plugin implements policy. */
int allocator_policy_known(const struct allocator *a, const char *policy);

/* The host name of the linked hub `name` (removed ones too), or NULL. */
const char *allocator_hostname(const struct allocator *a, const char *name);

/* The name of the linked hub whose name or host name is `text`, or
 * NULL. */
const char *allocator_hub_name(const struct allocator *a, const char *text);

/* What the engine knows about the registration. */
struct alloc_input {
  const char *registration_id;
  const json_t *enrollment;   /* stored enrollment or group */
  int is_group;
  const char *mechanism;      /* "symmetricKey", "x509", "tpm" */
  const json_t *payload;      /* the device's payload, or NULL */
  const char *current_hub;    /* hub name; NULL on first assignment */
  const char *current_device_id;
  const char *client_ip;      /* the device's IP address, or NULL */
  int dry_run;                /* explain without --call-webhook */
  int want_trace;             /* fill alloc_outcome.trace (explain) */
};

struct alloc_outcome {
  const char *hub;       /* configured hub name (allocator-owned); NULL: refused */
  const char *policy;    /* the policy that decided (allocator-owned) */
  char reason[64];       /* refusal reason code */
  char detail[256];      /* refusal message naming what was missing */
  json_t *initial_twin;  /* from the plugin (webhook), owned, or NULL */
  json_t *payload;       /* for registrationState.payload, owned, or NULL */
  json_t *trace;         /* explain (want_trace): policy, candidates,
                            steps; owned; else NULL */
};
void alloc_outcome_clear(struct alloc_outcome *o);

/* Never fails to fill *out: either out->hub or out->reason is set. */
void allocator_run(struct allocator *a, struct provd_call *call,
                   const struct alloc_input *in, struct alloc_outcome *out);

/* The DPS AllocationRequest (custom allocation webhook body) for `in` with
 * the given candidates; caller frees.  Exposed for tests. */
char *allocation_request_json(const struct allocator *a,
                              const struct alloc_input *in,
                              const struct provd_hub_info *const *cands,
                              size_t n);

#endif
