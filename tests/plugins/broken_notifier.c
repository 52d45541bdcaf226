/* Test plugin for the loader: a minimal notifier whose descriptor is
 * broken in one way, chosen at build time by BROKEN_<WHAT>
 * (tests/plugins/CMakeLists.txt builds one .so per variant):
 *   BAD_ABI_MAJOR       built for a future ABI major (2)
 *   BAD_MAGIC           the descriptor has the wrong magic number
 *   BAD_NAME            the name is not a valid plugin name
 *   NEEDS_NEWER_HOST    needs a host with ABI minor 7
 *   BAD_SCHEMA_DEFAULT  an INT option whose default is "abc"
 *   MISSING_OPS         no deliver op, which notifiers must have */
#include "provd/notifier.h"

#ifndef PLUGIN_NAME
#error "PLUGIN_NAME must be defined by the build"
#endif

static int t_create(const struct provd_host_api *host,
                    struct provd_instance *inst, void **state,
                    struct provd_err *err)
{
  (void)host, (void)inst, (void)err;
  *state = NULL;
  return PROVD_OK;
}

static void t_destroy(void *state) { (void)state; }

#ifndef BROKEN_MISSING_OPS
static int t_deliver(void *state, struct provd_call *call,
                     const struct provd_event *ev, struct provd_err *err)
{
  (void)state, (void)call, (void)ev, (void)err;
  return PROVD_OK;
}
#define DELIVER t_deliver
#else
#define DELIVER NULL
#endif

static const struct provd_option options[] = {
#ifdef BROKEN_BAD_SCHEMA_DEFAULT
  {"count", PROVD_OPT_INT, "abc", 0, "A number.", NULL},
#endif
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = t_create,
  .destroy = t_destroy,
};

static const struct provd_notifier_ops ops = {
  .struct_size = sizeof(struct provd_notifier_ops),
  .deliver = DELIVER,
};

#if defined(BROKEN_BAD_MAGIC)
#define MAGIC 0x12345678u
#else
#define MAGIC PROVD_PLUGIN_MAGIC
#endif
#if defined(BROKEN_BAD_ABI_MAJOR)
#define ABI_MAJOR 2
#else
#define ABI_MAJOR PROVD_ABI_MAJOR
#endif
#if defined(BROKEN_NEEDS_NEWER_HOST)
#define MIN_HOST_MINOR 99 /* newer than any host */
#else
#define MIN_HOST_MINOR 0
#endif
#if defined(BROKEN_BAD_NAME)
#define DESCRIPTOR_NAME "Bad Name"
#else
#define DESCRIPTOR_NAME PLUGIN_NAME
#endif

PROVD_PLUGIN_DEFINE = {
  .magic = MAGIC,
  .abi_major = ABI_MAJOR,
  .abi_minor = PROVD_ABI_MINOR,
  .struct_size = sizeof(struct provd_plugin),
  .kind = PROVD_KIND_NOTIFIER,
  .min_host_minor = MIN_HOST_MINOR,
  .name = DESCRIPTOR_NAME,
  .version = "0.1",
  .description = "Loader test: a notifier with one broken descriptor field.",
  .vendor = "provd tests",
  .options = options,
  .lifecycle = &lifecycle,
  .ops = &ops,
};
