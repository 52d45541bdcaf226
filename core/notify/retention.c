/* Journal retention (retention.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify/cursors.h"
#include "notify/retention.h"
#include "store/journal.h"
#include "util/log.h"
#include "util/timefmt.h"

#define COMP "notify"
#define RETENTION_EVERY_MS 10000

struct retention {
  struct cfg_events cfg;
  struct store *st;
  char **ids;
  size_t n_ids;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping;
  pthread_t th;
};

/* The lowest stored cursor of the instances (UINT64_MAX without any). */
static uint64_t finished_floor(const struct retention *r,
                               struct store_session *s)
{
  uint64_t floor = UINT64_MAX;
  for (size_t i = 0; i < r->n_ids; i++) {
    uint64_t c = notify_cursor_load(s, r->ids[i]);
    if (c < floor)
      floor = c;
  }
  return floor;
}

static void retention_round(struct retention *r, struct store_session *s)
{
  uint64_t cut = 0, removed = 0;
  struct provd_err err;
  perr_clear(&err);
  if (journal_retention_cut(s, r->cfg.retain_age_ms, r->cfg.retain_count,
                            time_now_ms(), &cut, &err) != PROVD_OK) {
    log_warn(COMP, "journal retention: %s: %s", err.code, err.msg);
    return;
  }
  uint64_t floor = finished_floor(r, s);
  if (floor != UINT64_MAX && cut > floor + 1)
    cut = floor + 1;
  if (cut <= 1)
    return;
  if (journal_trim(s, cut, &removed, &err) != PROVD_OK)
    log_warn(COMP, "journal retention: %s: %s", err.code, err.msg);
  else if (removed)
    log_info(COMP, "journal retention: removed %" PRIu64 " event(s) before "
                   "%" PRIu64, removed, cut);
}

static void *retention_main(void *arg)
{
  struct retention *r = arg;
  struct provd_err err;
  perr_clear(&err);
  struct store_session *s = store_session_open(r->st, &err);
  if (!s) {
    log_error(COMP, "journal retention: no store session (%s: %s)", err.code,
              err.msg);
    return NULL;
  }
  pthread_mutex_lock(&r->mu);
  while (!r->stopping) {
    pthread_mutex_unlock(&r->mu);
    retention_round(r, s);
    struct timespec until =
        time_after_us(CLOCK_REALTIME, RETENTION_EVERY_MS * 1000LL);
    pthread_mutex_lock(&r->mu);
    while (!r->stopping &&
           pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock(&r->mu);
  store_session_close(s);
  return NULL;
}

static void retention_free(struct retention *r)
{
  for (size_t i = 0; i < r->n_ids; i++)
    free(r->ids[i]);
  free(r->ids);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

int retention_start(const struct cfg_events *cfg, struct store *st,
                    char *const *ids, size_t n_ids, struct retention **out,
                    struct provd_err *err)
{
  *out = NULL;
  if (cfg->retain_age_ms <= 0 && cfg->retain_count <= 0)
    return PROVD_OK;
  struct retention *r = calloc(1, sizeof(*r));
  if (!r || (n_ids && !(r->ids = calloc(n_ids, sizeof(*r->ids))))) {
    free(r);
    perr_set(err, "NOMEM", "no memory for journal retention");
    return PROVD_E_NOMEM;
  }
  r->cfg = *cfg;
  r->st = st;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  for (; r->n_ids < n_ids; r->n_ids++)
    if (!(r->ids[r->n_ids] = strdup(ids[r->n_ids])))
      break;
  if (r->n_ids < n_ids || pthread_create(&r->th, NULL, retention_main, r)) {
    retention_free(r);
    perr_set(err, "THREAD", "cannot start journal retention");
    return PROVD_E_INTERNAL;
  }
  *out = r;
  return PROVD_OK;
}

void retention_stop(struct retention *r)
{
  if (!r)
    return;
  pthread_mutex_lock(&r->mu);
  r->stopping = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->th, NULL);
  retention_free(r);
}
