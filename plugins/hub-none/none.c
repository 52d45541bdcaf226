/* none hub connector: record only.  The registration names the hub and
 * nothing is pushed anywhere; what a linked hub without a connector
 * instance gets, spelled out for configs that want to say so. */
#include "provd/hub.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

static int none_create(const struct provd_host_api *host,
                       struct provd_instance *inst, void **state,
                       struct provd_err *err)
{
  (void)host;
  (void)inst;
  (void)err;
  *state = NULL;
  return PROVD_OK;
}

static void none_destroy(void *state)
{
  (void)state;
}

static int none_device(void *state, struct provd_call *call,
                       const struct provd_device *dev, struct provd_err *err)
{
  (void)state;
  (void)call;
  (void)dev;
  (void)err;
  return PROVD_OK;
}

static const struct provd_lifecycle none_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = none_create,
    .destroy = none_destroy,
};

static const struct provd_hub_ops none_ops = {
    .struct_size = sizeof(struct provd_hub_ops),
    .ensure_device = none_device,
    .remove_device = none_device,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_HUB,
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 0,
    .name = "none",
    .version = PROVD_VERSION,
    .description = "Record only: the registration names the hub, nothing is "
                   "pushed (the default for a hub without a connector)",
    .vendor = "provd",
    .options = NULL,
    .lifecycle = &none_lifecycle,
    .ops = &none_ops,
};
