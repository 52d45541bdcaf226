/* Allocation plugins: pick a hub for a device.  A pure function of its
 * input: same input, same answer, no side effects.  That is what lets the
 * core answer "which hub would device X get?" as a dry run. */
#ifndef PROVD_ALLOC_H
#define PROVD_ALLOC_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

struct provd_alloc_result; /* host-owned; filled via alloc_set_hub */

/* One candidate hub; passed as an array of pointers. */
struct provd_hub_info {
  uint32_t struct_size;
  const char *name;      /* hub name from the config */
  const char *hostname;  /* assignedHub on the wire */
  uint32_t weight;       /* 1..1000 */
  /* ---- ABI minor 7 (test with PROVD_HAS) ---- */
  const char *region;    /* the linked hub's region, or NULL when none is
                            set (provctl hub add|set --region) */
};

struct provd_alloc_request {
  uint32_t struct_size;
  const char *registration_id;
  const struct provd_cfg *enrollment; /* DPS JSON, secrets removed */
  const struct provd_cfg *payload;    /* device payload, or NULL */
  const char *current_hub;            /* name; NULL on first assignment */
  const struct provd_hub_info *const *hubs; /* candidates, never empty */
  size_t n_hubs;
  /* ---- ABI minor 5 (test with PROVD_HAS) ---- */
  int is_group;                  /* enrollment is an enrollment group */
  const char *current_device_id; /* NULL on first assignment */
  /* The DPS AllocationRequest for this registration, serialized: the
   * enrollment or group without keys, deviceRuntimeContext, linkedHubs
   * (host names of the candidates).  NULL for plugins flagged
   * PROVD_PLUGIN_NONBLOCKING: they cannot send it anywhere. */
  const char *allocation_request_json;
  /* 1 for a dry run (explain): no side effects that cost the outside
   * world anything, e.g. no webhook call unless the operator asked. */
  int dry_run;
  /* The device's IP address as text ("10.1.2.3", "2001:db8::7"), or NULL
   * when the transport does not know it. */
  const char *client_address;
};

struct provd_alloc_ops {
  uint32_t struct_size;
  /* The DPS allocationPolicy value this plugin implements ("hashed",
   * "static", "geoLatency", "custom"). */
  const char *policy;
  /* PROVD_OK with a hub set through alloc_set_hub, PROVD_DENIED with a
   * reason code (NO_HUB_AVAILABLE, ...), or a negative error. */
  int (*allocate)(void *state, struct provd_call *call,
                  const struct provd_alloc_request *req,
                  struct provd_alloc_result *res, struct provd_err *err);
};

#ifdef __cplusplus
}
#endif
#endif /* PROVD_ALLOC_H */
