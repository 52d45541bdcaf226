/* Test plugin: a valid notifier with a REQUIRED `url` option. */
#include <stdlib.h>

#include "provd/host.h"
#include "provd/notifier.h"

static int gn_create(const struct provd_host_api *host,
                     struct provd_instance *inst, void **state,
                     struct provd_err *err)
{
  (void)inst;
  *state = calloc(1, 1);
  if (!*state) {
    host->err_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  return PROVD_OK;
}

static void gn_destroy(void *state) { free(state); }

static int gn_deliver(void *state, struct provd_call *call,
                      const struct provd_event *ev, struct provd_err *err)
{
  (void)state;
  (void)call;
  (void)ev;
  (void)err;
  return PROVD_OK;
}

static const struct provd_option options[] = {
  {"url", PROVD_OPT_URL, NULL, PROVD_OPT_REQUIRED, "Where events go.", NULL},
  {"batch", PROVD_OPT_SIZE, "16KiB", 0, "Bytes per delivery.", NULL},
  {"verbose", PROVD_OPT_BOOL, "false", 0, "Log every event.", NULL},
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = gn_create,
  .destroy = gn_destroy,
};

static const struct provd_notifier_ops ops = {
  .struct_size = sizeof(struct provd_notifier_ops),
  .deliver = gn_deliver,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_NOTIFIER,
  .name = "good_notifier",
  .version = "0.1",
  .description = "Loader test: a notifier with a required option.",
  .vendor = "provd tests",
  .options = options,
  .lifecycle = &lifecycle,
  .ops = &ops,
};
