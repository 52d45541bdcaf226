/* The journal on the service API (provd extension): GET /events (read by
 * cursor), GET /events/{seq} (one event and its delivery to each
 * notifier), GET /events/verify (walk the hash chain), POST
 * /events/{seq}/retry (hand dead letters back to their notifiers). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/service_internal.h"
#include "notify/cursors.h"
#include "notify/dispatch.h"
#include "store/journal.h"
#include "util/timefmt.h"

static json_t *event_json(const struct provd_outbox_event *ev)
{
  char when[32];
  time_iso8601(ev->time_ms, when);
  json_t *body = ev->body_json ? json_loads(ev->body_json, 0, NULL) : NULL;
  if (!body) /* a damaged row is shown as it is, not hidden */
    body = ev->body_json ? json_string(ev->body_json) : json_null();
  return json_pack("{s:I, s:s?, s:s, s:s, s:I, s:s, s:o, s:s?, s:s?}",
                   "seq", (json_int_t)ev->seq, "id", ev->event_id, "type",
                   ev->type ? ev->type : "", "time", when, "timeMs",
                   (json_int_t)ev->time_ms, "subject",
                   ev->subject ? ev->subject : "", "body", body, "prevHash",
                   ev->prev_hash, "hash", ev->hash);
}

static int collect_event(void *ud, const struct provd_outbox_event *ev)
{
  json_t *arr = ud;
  json_t *item = event_json(ev);
  if (!item || json_array_append_new(arr, item) != 0)
    return PROVD_E_NOMEM;
  return PROVD_OK;
}

static void read_events(struct store_session *s, void *ud)
{
  struct svc_job *job = ud;
  json_t *arr = json_array();
  struct provd_err err;
  perr_clear(&err);
  if (!arr || store_events(s, job->after_seq, job->page_size, collect_event,
                           arr, &err) != PROVD_OK) {
    json_decref(arr);
    svc_job_respond_unavailable(job, &err);
    return;
  }
  svc_job_respond_json(job, 200, arr, NULL, 0);
}

/* ---- one event and its deliveries ---- */

/* What happened to event seq at notifier d: "filtered", "delivered",
 * "pending", or the dead letter's state ("dead", "retry", "queued"). */
static json_t *delivery_of(struct store_session *s,
                           const struct cfg_plugin_decl *d,
                           const char *type, uint64_t seq)
{
  json_t *out = json_pack("{s:s}", "instance", d->id);
  if (!config_event_wanted(d->events, d->n_events, type)) {
    json_object_set_new(out, "state", json_string("filtered"));
    return out;
  }
  char id[DEAD_LETTER_ID_MAX];
  dead_letter_id(d->id, seq, id);
  struct store_rec rec;
  struct provd_err err;
  perr_clear(&err);
  if (store_get(s, PROVD_TABLE_DEAD_LETTERS, id, &rec, &err) == PROVD_OK) {
    json_object_update(out, rec.body);
    json_object_del(out, "seq");
    store_rec_clear(&rec);
    return out;
  }
  uint64_t cursor = notify_cursor_load(s, d->id);
  json_object_set_new(out, "state", json_string(cursor >= seq ? "delivered"
                                                              : "pending"));
  return out;
}

static void read_event_one(struct store_session *s, void *ud)
{
  struct svc_job *job = ud;
  json_t *arr = json_array();
  struct provd_err err;
  perr_clear(&err);
  if (!arr || store_events(s, job->seq - 1, 1, collect_event, arr, &err) !=
                  PROVD_OK) {
    json_decref(arr);
    svc_job_respond_unavailable(job, &err);
    return;
  }
  json_t *ev = json_array_get(arr, 0);
  if (!ev || (uint64_t)json_integer_value(json_object_get(ev, "seq")) !=
                 job->seq) {
    json_decref(arr);
    svc_job_respond_error(job, 404, SVC_E_NO_ROUTE,
                          "No event with this sequence number");
    return;
  }
  json_incref(ev);
  json_decref(arr);
  const char *type = json_string_value(json_object_get(ev, "type"));
  const struct provd_config *cfg = job->ctx->cfg;
  json_t *deliveries = json_array();
  for (size_t i = 0; cfg && i < cfg->n_plugins; i++)
    if (cfg->plugins[i].kind == PROVD_KIND_NOTIFIER)
      json_array_append_new(deliveries,
                            delivery_of(s, &cfg->plugins[i], type, job->seq));
  json_object_set_new(ev, "deliveries", deliveries);
  svc_job_respond_json(job, 200, ev, NULL, 0);
}

/* ---- verification ---- */

static void read_verify(struct store_session *s, void *ud)
{
  struct svc_job *job = ud;
  struct journal_report r;
  struct provd_err err;
  perr_clear(&err);
  if (journal_verify(s, &r, &err) != PROVD_OK) {
    svc_job_respond_unavailable(job, &err);
    return;
  }
  json_t *out = json_pack(
      "{s:b, s:I, s:I, s:I, s:I, s:s}", "ok", r.broken_seq == 0, "events",
      (json_int_t)r.events, "unchained", (json_int_t)r.unchained, "firstSeq",
      (json_int_t)r.first_seq, "lastSeq", (json_int_t)r.last_seq,
      "lastHash", r.last_hash);
  if (out && r.broken_seq) {
    json_object_set_new(out, "brokenSeq", json_integer((json_int_t)
                                                           r.broken_seq));
    json_object_set_new(out, "problem", json_string(r.problem));
  }
  svc_job_respond_json(job, 200, out, NULL, 0);
}

/* ---- retry of dead letters (writer thread) ---- */

static int retry_one(struct store_session *s, const char *instance,
                     uint64_t seq, int *changed, struct provd_err *err)
{
  char id[DEAD_LETTER_ID_MAX];
  dead_letter_id(instance, seq, id);
  struct store_rec rec;
  int rc = store_get(s, PROVD_TABLE_DEAD_LETTERS, id, &rec, err);
  if (rc == PROVD_NOT_FOUND) {
    perr_clear(err);
    return PROVD_OK;
  }
  if (rc != PROVD_OK)
    return rc;
  const char *state = json_string_value(json_object_get(rec.body, "state"));
  if (state && strcmp(state, "dead") == 0) {
    json_object_set_new(rec.body, "state", json_string("retry"));
    rec.updated_ms = time_now_ms();
    rc = store_put(s, PROVD_TABLE_DEAD_LETTERS, &rec, NULL, 0, err);
    *changed = rc == PROVD_OK;
  }
  store_rec_clear(&rec);
  return rc;
}

static int write_retry(struct store_session *s, void *ud,
                       struct provd_err *err)
{
  struct svc_job *job = ud;
  const struct provd_config *cfg = job->ctx->cfg;
  json_t *instances = json_array();
  for (size_t i = 0; cfg && i < cfg->n_plugins; i++) {
    const struct cfg_plugin_decl *d = &cfg->plugins[i];
    int changed = 0;
    if (d->kind != PROVD_KIND_NOTIFIER)
      continue;
    int rc = retry_one(s, d->id, job->seq, &changed, err);
    if (rc != PROVD_OK) {
      json_decref(instances);
      return rc;
    }
    if (changed)
      json_array_append_new(instances, json_string(d->id));
  }
  if (json_array_size(instances) == 0) {
    json_decref(instances);
    job->fail_http = 404;
    job->fail_code = SVC_E_NO_ROUTE;
    snprintf(job->fail_msg, sizeof(job->fail_msg),
             "No dead letter for event %" PRIu64, job->seq);
    return PROVD_NOT_FOUND;
  }
  json_decref(job->result);
  job->result = json_pack("{s:I, s:o}", "seq", (json_int_t)job->seq,
                          "retrying", instances);
  return PROVD_OK;
}

int svc_events_submit(struct svc_job *job)
{
  struct store *st = job->ctx->store;
  switch (job->op) {
  case SVC_OP_EVENTS:
    return store_submit_read(st, read_events, job);
  case SVC_OP_EVENT_GET:
    return store_submit_read(st, read_event_one, job);
  case SVC_OP_EVENTS_VERIFY:
    return store_submit_read(st, read_verify, job);
  case SVC_OP_EVENT_RETRY:
    return store_submit_write(st, write_retry, svc_write_done, job);
  default:
    return PROVD_E_INTERNAL;
  }
}
