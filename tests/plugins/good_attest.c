/* Test plugin: a valid attestation plugin with an option of most types.
 * It records its lifecycle calls ("create GREETING", "configure
 * GREETING", ...) into the file named by the `journal` option, so tests
 * can check the order the host drives it in.  `fail_at` makes one step
 * fail on purpose. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provd/attest.h"
#include "provd/host.h"

#define MAX_PENDING 8

struct state {
  const struct provd_host_api *host;
  char greeting[64];
  char journal[512];
  char fail_at[16];
  /* Events that happened before configure() told us where to write. */
  const char *pending[MAX_PENDING];
  size_t n_pending;
};

static void append_line(const struct state *s, const char *event)
{
  FILE *f = fopen(s->journal, "a");
  if (!f)
    return;
  fprintf(f, "%s %s\n", event, s->greeting);
  fclose(f);
}

static void record(struct state *s, const char *event)
{
  if (s->journal[0])
    append_line(s, event);
  else if (s->n_pending < MAX_PENDING)
    s->pending[s->n_pending++] = event;
}

static int ga_create(const struct provd_host_api *host,
                     struct provd_instance *inst, void **state,
                     struct provd_err *err)
{
  (void)inst;
  struct state *s = calloc(1, sizeof(*s));
  if (!s) {
    host->err_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  s->host = host;
  record(s, "create");
  *state = s;
  return PROVD_OK;
}

static void copy_opt(struct state *s, const struct provd_cfg *o,
                     const char *key, char *out, size_t out_len)
{
  const char *v = NULL;
  if (s->host->cfg_str(o, key, &v) == PROVD_OK)
    snprintf(out, out_len, "%s", v);
}

static int ga_configure(void *state, const struct provd_cfg *o,
                        struct provd_err *err)
{
  struct state *s = state;
  int64_t retries = -1;
  copy_opt(s, o, "greeting", s->greeting, sizeof(s->greeting));
  copy_opt(s, o, "journal", s->journal, sizeof(s->journal));
  copy_opt(s, o, "fail_at", s->fail_at, sizeof(s->fail_at));
  if (s->host->cfg_int(o, "retries", &retries) != PROVD_OK || retries < 0) {
    s->host->err_set(err, "BAD_OPTION", "retries missing or negative");
    return PROVD_E_CONFIG;
  }
  for (size_t i = 0; i < s->n_pending; i++)
    record(s, s->pending[i]);
  s->n_pending = 0;
  record(s, "configure");
  if (strcmp(s->fail_at, "configure") == 0) {
    s->host->err_set(err, "TEST_FAILURE", "configure fails on purpose");
    return PROVD_E_CONFIG;
  }
  return PROVD_OK;
}

static int ga_start(void *state, struct provd_err *err)
{
  struct state *s = state;
  record(s, "start");
  if (strcmp(s->fail_at, "start") == 0) {
    s->host->err_set(err, "TEST_FAILURE", "start fails on purpose");
    return PROVD_E_UNAVAILABLE;
  }
  return PROVD_OK;
}

static void ga_stop(void *state) { record(state, "stop"); }

static void ga_destroy(void *state)
{
  record(state, "destroy");
  free(state);
}

/* Accepts a device whose SAS token equals the greeting; nothing else. */
static int ga_attest(void *state, struct provd_call *call,
                     const struct provd_attest_request *req,
                     struct provd_attest_result *res, struct provd_err *err)
{
  struct state *s = state;
  (void)call;
  if (!req->authorization || strcmp(req->authorization, s->greeting) != 0) {
    s->host->err_set(err, "BAD_SIGNATURE", "greeting does not match");
    return PROVD_DENIED;
  }
  return s->host->attest_set_device_id(res, req->registration_id);
}

static const char *const modes[] = {"fast", "safe", NULL};
static const char *const fail_points[] = {"none", "configure", "start",
                                          NULL};
static const char *const mechanisms[] = {"symmetricKey", NULL};

static const struct provd_option options[] = {
  {"greeting", PROVD_OPT_STRING, "hi", 0, "What the plugin says.", NULL},
  {"retries", PROVD_OPT_INT, "3", 0, "How often to retry.", NULL},
  {"mode", PROVD_OPT_ENUM, "safe", 0, "Speed over safety or not.", modes},
  {"timeout", PROVD_OPT_DURATION, "30s", 0, "How long to wait.", NULL},
  {"journal", PROVD_OPT_PATH, NULL, 0, "File that records calls.", NULL},
  {"fail_at", PROVD_OPT_ENUM, "none", 0, "Step that fails on purpose.",
   fail_points},
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = ga_create,
  .configure = ga_configure,
  .start = ga_start,
  .stop = ga_stop,
  .destroy = ga_destroy,
};

static const struct provd_attest_ops ops = {
  .struct_size = sizeof(struct provd_attest_ops),
  .mechanisms = mechanisms,
  .attest = ga_attest,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_ATTESTATION,
  .name = "good_attest",
  .version = "1.2.3",
  .description = "Loader test: a well-formed attestation plugin.",
  .vendor = "provd tests",
  .options = options,
  .lifecycle = &lifecycle,
  .ops = &ops,
};
