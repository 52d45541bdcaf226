/* Hub connector health (hub_health.h). */
#include "engine/hub_health.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provd/hub.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"

#define COMP "hub"

struct watched {
  struct plugin_instance *inst;
  int healthy;
};

struct hub_health {
  struct store *st;
  struct engine *e;
  struct watched *hubs;
  size_t n;
  int interval_ms;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping;
};

struct unhealthy_event {
  char hub[128];
  struct provd_err why;
};

static int write_unhealthy(struct store_session *s, void *ud,
                           struct provd_err *err)
{
  struct unhealthy_event *ev = ud;
  json_t *body = json_pack("{s:s,s:s,s:s}", "hub", ev->hub, "reason",
                           ev->why.code[0] ? ev->why.code : "UNAVAILABLE",
                           "message", ev->why.msg);
  int rc = store_event(s, "hub.unhealthy", ev->hub, body, NULL, err);
  json_decref(body);
  return rc;
}

static void unhealthy_written(void *ud, int status,
                              const struct provd_err *err)
{
  struct unhealthy_event *ev = ud;
  if (status != PROVD_OK)
    log_error(COMP, "hub %s: hub.unhealthy event not written: %s", ev->hub,
              err ? err->msg : "?");
  free(ev);
}

static void announce_down(struct hub_health *h, const char *hub,
                          const struct provd_err *why)
{
  struct unhealthy_event *ev = calloc(1, sizeof(*ev));
  if (!ev)
    return;
  snprintf(ev->hub, sizeof(ev->hub), "%s", hub);
  ev->why = *why;
  if (store_submit_write(h->st, write_unhealthy, unhealthy_written, ev) !=
      PROVD_OK) {
    log_error(COMP, "hub %s: hub.unhealthy event not written: store queue "
                    "full", hub);
    free(ev);
  }
}

static void check_one(struct hub_health *h, struct watched *w)
{
  const struct provd_hub_ops *ops = w->inst->desc->ops;
  struct provd_err err = {{0}, {0}};
  plugin_op_enter(w->inst);
  int healthy = ops->health(w->inst->state, &err) == PROVD_OK;
  plugin_op_leave(w->inst);
  char labels[160];
  snprintf(labels, sizeof(labels), "hub=\"%s\"", w->inst->id);
  metrics_set("provd_hub_up", "1 when the hub connector reports its hub up.",
              labels, healthy);
  if (healthy == w->healthy)
    return;
  w->healthy = healthy;
  engine_set_hub_health(h->e, w->inst->id, healthy);
  if (healthy) {
    log_info(COMP, "hub %s: healthy again, takes new devices", w->inst->id);
    return;
  }
  log_warn(COMP, "hub %s: unhealthy (%s: %s), no new devices until it is "
                 "back", w->inst->id, err.code[0] ? err.code : "UNAVAILABLE",
           err.msg);
  announce_down(h, w->inst->id, &err);
}

/* Waits one interval (or until stopped); 0 when stopping. */
static int pause_interval(struct hub_health *h)
{
  struct timespec until =
      time_after_us(CLOCK_REALTIME, (int64_t)h->interval_ms * 1000);
  pthread_mutex_lock(&h->mu);
  while (!h->stopping &&
         pthread_cond_timedwait(&h->cv, &h->mu, &until) != ETIMEDOUT)
    ;
  int go_on = !h->stopping;
  pthread_mutex_unlock(&h->mu);
  return go_on;
}

/* The first check comes one interval after start: a broker started
 * beside provd has that long to come up before its hub counts as down. */
static void *health_main(void *arg)
{
  struct hub_health *h = arg;
  while (pause_interval(h))
    for (size_t i = 0; i < h->n; i++)
      check_one(h, &h->hubs[i]);
  return NULL;
}

static int has_health(const struct plugin_instance *p)
{
  const struct provd_hub_ops *ops = p->desc->ops;
  return PROVD_HAS(ops, struct provd_hub_ops, health) && ops->health;
}

int hub_health_start(struct store *st, struct engine *e,
                     const struct plugin_set *plugins, int interval_ms,
                     struct hub_health **out, struct provd_err *err)
{
  *out = NULL;
  size_t n = 0;
  struct plugin_instance *p;
  for (size_t i = 0; (p = plugins_nth(plugins, PROVD_KIND_HUB, i)); i++)
    n += has_health(p);
  if (!n)
    return PROVD_OK;
  struct hub_health *h = calloc(1, sizeof(*h));
  if (!h || !(h->hubs = calloc(n, sizeof(*h->hubs)))) {
    free(h);
    perr_set(err, "NOMEM", "no memory for hub health checks");
    return PROVD_E_NOMEM;
  }
  for (size_t i = 0; (p = plugins_nth(plugins, PROVD_KIND_HUB, i)); i++)
    if (has_health(p))
      h->hubs[h->n++] = (struct watched){.inst = p, .healthy = 1};
  h->st = st;
  h->e = e;
  h->interval_ms = interval_ms > 0 ? interval_ms : HUB_HEALTH_INTERVAL_MS;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  if (pthread_create(&h->th, NULL, health_main, h) != 0) {
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->hubs);
    free(h);
    perr_set(err, "THREAD", "cannot start the hub health thread");
    return PROVD_E_INTERNAL;
  }
  *out = h;
  return PROVD_OK;
}

void hub_health_stop(struct hub_health *h)
{
  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  h->stopping = 1;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  pthread_join(h->th, NULL);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h->hubs);
  free(h);
}
