/* Test plugin: a storage plugin that stores nothing.  Loader tests need a
 * storage instance (every config has one); this one also writes
 * "configure PATH" into its `journal` file so tests can see the database
 * path the host chose. */
#include <stdio.h>
#include <stdlib.h>

#include "provd/host.h"
#include "provd/storage.h"

struct state {
  const struct provd_host_api *host;
};

static int gs_create(const struct provd_host_api *host,
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
  *state = s;
  return PROVD_OK;
}

static int gs_configure(void *state, const struct provd_cfg *o,
                        struct provd_err *err)
{
  struct state *s = state;
  const char *path = NULL, *journal = NULL;
  (void)err;
  s->host->cfg_str(o, "path", &path);
  if (s->host->cfg_str(o, "journal", &journal) != PROVD_OK)
    return PROVD_OK;
  FILE *f = fopen(journal, "a");
  if (f) {
    fprintf(f, "configure %s\n", path ? path : "(none)");
    fclose(f);
  }
  return PROVD_OK;
}

static void gs_destroy(void *state) { free(state); }

static int gs_session_open(void *state, void **session,
                           struct provd_err *err)
{
  (void)err;
  *session = state;
  return PROVD_OK;
}

static void gs_session_close(void *session) { (void)session; }

static int gs_tx(void *session, struct provd_err *err)
{
  (void)session;
  (void)err;
  return PROVD_OK;
}

static int gs_get(void *session, enum provd_table t, const char *id,
                  provd_record_fn fn, void *ud, struct provd_err *err)
{
  (void)session, (void)t, (void)id, (void)fn, (void)ud, (void)err;
  return PROVD_NOT_FOUND;
}

static int gs_put(void *session, enum provd_table t,
                  const struct provd_record *rec, const char *if_match,
                  int must_create, struct provd_err *err)
{
  (void)session, (void)t, (void)rec, (void)if_match, (void)must_create;
  (void)err;
  return PROVD_E_UNSUPPORTED;
}

static int gs_del(void *session, enum provd_table t, const char *id,
                  const char *if_match, struct provd_err *err)
{
  (void)session, (void)t, (void)id, (void)if_match, (void)err;
  return PROVD_NOT_FOUND;
}

static int gs_list(void *session, enum provd_table t,
                   const struct provd_query *q, provd_record_fn fn, void *ud,
                   struct provd_err *err)
{
  (void)session, (void)t, (void)q, (void)fn, (void)ud, (void)err;
  return PROVD_OK;
}

static int gs_count(void *session, enum provd_table t,
                    const struct provd_query *q, uint64_t *out,
                    struct provd_err *err)
{
  (void)session, (void)t, (void)q, (void)err;
  *out = 0;
  return PROVD_OK;
}

static int gs_outbox_append(void *session, const struct provd_outbox_event *ev,
                            uint64_t *seq_out, struct provd_err *err)
{
  (void)session, (void)ev, (void)seq_out, (void)err;
  return PROVD_E_UNSUPPORTED;
}

static int gs_outbox_list(void *session, uint64_t after_seq, size_t limit,
                          provd_event_fn fn, void *ud, struct provd_err *err)
{
  (void)session, (void)after_seq, (void)limit, (void)fn, (void)ud, (void)err;
  return PROVD_OK;
}

static const struct provd_option options[] = {
  {"path", PROVD_OPT_PATH, NULL, 0, "Database file.", NULL},
  {"journal", PROVD_OPT_PATH, NULL, 0, "File that records calls.", NULL},
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = gs_create,
  .configure = gs_configure,
  .destroy = gs_destroy,
};

static const struct provd_storage_ops ops = {
  .struct_size = sizeof(struct provd_storage_ops),
  .session_open = gs_session_open,
  .session_close = gs_session_close,
  .tx_begin = gs_tx,
  .tx_commit = gs_tx,
  .tx_rollback = gs_tx,
  .get = gs_get,
  .put = gs_put,
  .del = gs_del,
  .list = gs_list,
  .count = gs_count,
  .outbox_append = gs_outbox_append,
  .outbox_list = gs_outbox_list,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_STORAGE,
  .name = "good_storage",
  .version = "0.1",
  .description = "Loader test: a storage plugin that keeps nothing.",
  .vendor = "provd tests",
  .options = options,
  .lifecycle = &lifecycle,
  .ops = &ops,
};
