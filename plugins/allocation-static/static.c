/* static allocation: the one hub the enrollment names, in iotHubs (exactly
 * one entry) or the legacy iotHubHostName.  See docs/plugins/static.md. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provd/alloc.h"
#include "provd/host.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

struct static_alloc {
  const struct provd_host_api *host; /* borrowed until destroy */
};

static int static_create(const struct provd_host_api *host,
                         struct provd_instance *inst, void **state,
                         struct provd_err *err)
{
  (void)inst;
  struct static_alloc *sa = calloc(1, sizeof(*sa));
  if (!sa) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  sa->host = host;
  *state = sa;
  return PROVD_OK;
}

static void static_destroy(void *state)
{
  free(state);
}

/* The hub the enrollment names, or NULL with err set. */
static const char *named_hub(const struct provd_host_api *h,
                             const struct provd_alloc_request *req,
                             struct provd_err *err)
{
  const struct provd_cfg *list = NULL;
  const char *single = NULL;
  if (h->cfg_child(req->enrollment, "iotHubs", &list) == PROVD_OK &&
      h->cfg_count(list) > 0) {
    const struct provd_cfg *first = NULL;
    if (h->cfg_count(list) != 1) {
      h->err_set(err, "NO_HUB_AVAILABLE",
                 "registration %s: static allocation needs exactly one hub "
                 "in iotHubs, the enrollment names %zu",
                 req->registration_id, h->cfg_count(list));
      return NULL;
    }
    if (h->cfg_at(list, 0, &first) == PROVD_OK)
      single = h->cfg_text(first);
  } else if (h->cfg_str(req->enrollment, "iotHubHostName", &single) !=
             PROVD_OK) {
    single = NULL;
  }
  if (!single || !*single)
    h->err_set(err, "NO_HUB_AVAILABLE",
               "registration %s: static allocation needs a hub in iotHubs "
               "or iotHubHostName; the enrollment names none",
               req->registration_id);
  return single && *single ? single : NULL;
}

static int static_allocate(void *state, struct provd_call *call,
                           const struct provd_alloc_request *req,
                           struct provd_alloc_result *res,
                           struct provd_err *err)
{
  (void)call;
  struct static_alloc *sa = state;
  const struct provd_host_api *h = sa->host;
  const char *want = named_hub(h, req, err);
  if (!want)
    return PROVD_DENIED;
  for (size_t i = 0; i < req->n_hubs; i++) {
    const struct provd_hub_info *hub = req->hubs[i];
    if (strcasecmp(hub->name, want) == 0 ||
        strcasecmp(hub->hostname, want) == 0)
      return h->alloc_set_hub(res, hub->name, "static: the enrollment's hub");
  }
  h->err_set(err, "NO_HUB_AVAILABLE",
             "registration %s: the enrollment's hub '%s' is not a candidate "
             "(unknown, drained or apply_allocation_policy: false)",
             req->registration_id, want);
  return PROVD_DENIED;
}

static const struct provd_lifecycle static_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = static_create,
    .destroy = static_destroy,
};

static const struct provd_alloc_ops static_ops = {
    .struct_size = sizeof(struct provd_alloc_ops),
    .policy = "static",
    .allocate = static_allocate,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ALLOCATION,
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 0,
    .name = "static",
    .version = PROVD_VERSION,
    .description = "The one hub the enrollment names (DPS allocationPolicy "
                   "static)",
    .vendor = "provd",
    .options = NULL,
    .lifecycle = &static_lifecycle,
    .ops = &static_ops,
};
