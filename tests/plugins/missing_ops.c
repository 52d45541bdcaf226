/* Test plugin: a notifier without its mandatory deliver op. */
#include "provd/notifier.h"

static int t_create(const struct provd_host_api *host,
                    struct provd_instance *inst, void **state,
                    struct provd_err *err)
{
  (void)host, (void)inst, (void)err;
  *state = NULL;
  return PROVD_OK;
}

static void t_destroy(void *state) { (void)state; }

static const struct provd_option options[] = {
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = t_create,
  .destroy = t_destroy,
};

static const struct provd_notifier_ops ops = {
  .struct_size = sizeof(struct provd_notifier_ops),
  .deliver = NULL,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_NOTIFIER,
  .name = "missing_ops",
  .version = "0.1",
  .description = "Loader test: a notifier without its mandatory deliver op.",
  .vendor = "provd tests",
  .options = options,
  .lifecycle = &lifecycle,
  .ops = &ops,
};
