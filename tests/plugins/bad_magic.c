/* Test plugin: the descriptor has the wrong magic number. */
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

static int t_deliver(void *state, struct provd_call *call,
                     const struct provd_event *ev, struct provd_err *err)
{
  (void)state, (void)call, (void)ev, (void)err;
  return PROVD_OK;
}

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
  .deliver = t_deliver,
};

PROVD_PLUGIN_DEFINE = {
  .magic = 0x12345678u, .abi_major = PROVD_ABI_MAJOR,
  .abi_minor = PROVD_ABI_MINOR, .struct_size = sizeof(struct provd_plugin),
  .kind = PROVD_KIND_NOTIFIER,
  .name = "bad_magic",
  .version = "0.1",
  .description = "Loader test: the descriptor has the wrong magic number.",
  .vendor = "provd tests",
  .options = options,
  .lifecycle = &lifecycle,
  .ops = &ops,
};
