/* example: a notifier that appends every event as one JSON line to a
 * file.  The smallest complete provd plugin; docs/writing-a-plugin.md
 * walks through it.
 *
 *   plugins:
 *     - kind: notifier
 *       name: example
 *       path: /opt/provd-example/example.so
 *       options: { file: /var/log/provd-events.jsonl }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <provd/host.h>
#include <provd/notifier.h>

/* Everything an instance needs; the host may run several instances. */
struct example {
  const struct provd_host_api *host;
  struct provd_instance *inst;
  char file[1024];
};

static int example_create(const struct provd_host_api *host,
                          struct provd_instance *inst, void **state,
                          struct provd_err *err)
{
  struct example *ex = calloc(1, sizeof(*ex));
  if (!ex) {
    host->err_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  ex->host = host;
  ex->inst = inst;
  *state = ex;
  return PROVD_OK;
}

/* Options were checked against the schema below before this runs; the
 * strings are borrowed, so copy what you keep. */
static int example_configure(void *state, const struct provd_cfg *options,
                             struct provd_err *err)
{
  struct example *ex = state;
  const char *file = NULL;
  if (ex->host->cfg_str(options, "file", &file) != PROVD_OK ||
      strlen(file) >= sizeof(ex->file)) {
    ex->host->err_set(err, "BAD_OPTION", "file: missing or too long");
    return PROVD_E_CONFIG;
  }
  memcpy(ex->file, file, strlen(file) + 1);
  return PROVD_OK;
}

static void example_destroy(void *state) { free(state); }

/* Runs on a worker thread; blocking I/O is fine.  PROVD_E_UNAVAILABLE
 * reports a temporary failure. */
static int example_deliver(void *state, struct provd_call *call,
                           const struct provd_event *ev,
                           struct provd_err *err)
{
  struct example *ex = state;
  FILE *f = fopen(ex->file, "a");
  if (!f) {
    ex->host->err_set(err, "FILE_UNAVAILABLE", "cannot open %s", ex->file);
    return PROVD_E_UNAVAILABLE;
  }
  /* The event id identifies the event: receivers deduplicate on it.
   * Event types are host-made ("device.assigned"), body_json is JSON. */
  int ok = fprintf(f, "{\"id\":%llu,\"type\":\"%s\",\"event\":%s}\n",
                   (unsigned long long)ev->id, ev->type, ev->body_json) > 0;
  ok = (fclose(f) == 0) && ok;
  if (!ok) {
    ex->host->err_set(err, "FILE_WRITE_FAILED", "cannot write %s", ex->file);
    return PROVD_E_UNAVAILABLE;
  }
  ex->host->log(ex->inst, call, PROVD_LOG_DEBUG, "wrote event %llu",
                (unsigned long long)ev->id);
  ex->host->counter_add(ex->inst, "example_events_total",
                        "Events written by the example notifier.", 1);
  return PROVD_OK;
}

static const struct provd_option example_options[] = {
  {"file", PROVD_OPT_PATH, NULL, PROVD_OPT_REQUIRED,
   "File the events are appended to, one JSON object per line.", NULL},
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle example_lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = example_create,
  .configure = example_configure,
  .destroy = example_destroy,
};

static const struct provd_notifier_ops example_ops = {
  .struct_size = sizeof(struct provd_notifier_ops),
  .deliver = example_deliver,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_NOTIFIER,
  .name = "example",
  .version = "1.0.0",
  .description = "Appends every event as a JSON line to a file.",
  .vendor = "provd project",
  .options = example_options,
  .lifecycle = &example_lifecycle,
  .ops = &example_ops,
};
