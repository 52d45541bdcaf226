/* /hubs (provd extension): the linked hubs at run time.
 *
 *   GET    /hubs         every hub record with its device count
 *   PUT    /hubs/{name}  create, or change the fields the body names
 *   DELETE /hubs/{name}  mark removed: no new devices, records kept
 *
 * Writes run on the store's writer thread; after the commit the engine
 * gets the new hub list (hubs_apply), so later registrations see it. */
#include <stdio.h>
#include <string.h>

#include "api/service_internal.h"
#include "engine/hubs.h"
#include "plugin/loader.h"
#include "provd/storage.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/timefmt.h"

#define HUB_HOSTNAME_MAX 255
#define HUB_REGION_MAX 64
#define HUB_WEIGHT_MAX 1000

static void read_hubs(struct store_session *s, void *ud)
{
  struct svc_job *job = ud;
  json_t *arr = NULL;
  struct provd_err err;
  perr_clear(&err);
  int rc = hubs_read_all(s, &arr, &err);
  size_t i;
  json_t *h;
  json_array_foreach(rc == PROVD_OK ? arr : NULL, i, h) {
    struct provd_query q = {
        .struct_size = sizeof(q),
        .hub = json_string_value(json_object_get(h, "name"))};
    uint64_t count = 0;
    rc = store_count(s, PROVD_TABLE_REGISTRATIONS, &q, &count, &err);
    if (rc != PROVD_OK)
      break;
    json_object_set_new(h, "devices", json_integer((json_int_t)count));
  }
  if (rc != PROVD_OK) {
    json_decref(arr);
    svc_job_respond_unavailable(job, &err);
    return;
  }
  svc_job_respond_json(job, 200, arr, NULL, 0);
}

/* The body of PUT /hubs/{name}: only known fields, each well-typed. */
int svc_hub_doc_check(const json_t *doc, char *why, size_t why_cap)
{
  const char *key;
  const json_t *v;
  if (!json_is_object(doc)) {
    snprintf(why, why_cap, "The body must be a JSON object");
    return -1;
  }
  json_object_foreach((json_t *)doc, key, v) {
    const char *bad = NULL;
    if (strcmp(key, "hostname") == 0)
      bad = json_is_string(v) && json_string_length(v) > 0 &&
                    json_string_length(v) <= HUB_HOSTNAME_MAX
                ? NULL
                : "hostname must be a host name of 1..255 characters";
    else if (strcmp(key, "weight") == 0)
      bad = json_is_integer(v) && json_integer_value(v) >= 0 &&
                    json_integer_value(v) <= HUB_WEIGHT_MAX
                ? NULL
                : "weight must be an integer 0..1000 (0: drained)";
    else if (strcmp(key, "applyAllocationPolicy") == 0)
      bad = json_is_boolean(v) ? NULL
                               : "applyAllocationPolicy must be a boolean";
    else if (strcmp(key, "region") == 0)
      bad = json_is_null(v) || (json_is_string(v) &&
                                json_string_length(v) <= HUB_REGION_MAX)
                ? NULL
                : "region must be a string of at most 64 characters or null";
    else
      bad = "unknown field (hostname, weight, applyAllocationPolicy, "
            "region)";
    if (bad) {
      snprintf(why, why_cap, "%s: %s", key, bad);
      return -1;
    }
  }
  return 0;
}

/* Merges the request into the stored record (or a new one).  A PUT on a
 * removed hub links it again. */
static json_t *hub_merged(const struct svc_job *job, const json_t *old)
{
  json_t *rec = old ? json_deep_copy(old)
                    : json_pack("{s:s,s:i,s:b,s:n}", "name", job->id,
                                "weight", 1, "applyAllocationPolicy", 1,
                                "region");
  if (!rec)
    return NULL;
  json_object_update(rec, job->doc);
  json_object_set_new(rec, "name", json_string(job->id));
  json_object_set_new(rec, "removed", json_false());
  return rec;
}

static int hub_put(struct store_session *s, struct svc_job *job,
                   const struct store_rec *old, size_t n_hubs,
                   struct provd_err *err)
{
  if (!old->body && !json_object_get(job->doc, "hostname")) {
    svc_job_fail(job, 400, SVC_E_BAD_DOCUMENT,
                 "A new hub needs a hostname");
    return PROVD_E_INVAL;
  }
  if (!old->body && n_hubs >= ALLOC_MAX_HUBS) {
    svc_job_fail(job, 409, SVC_E_EXISTS, "Too many linked hubs (at most 64)");
    return PROVD_E_INVAL;
  }
  json_t *body = hub_merged(job, old->body);
  if (!body) {
    perr_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  char etag[40];
  ids_etag(etag);
  int64_t now = time_now_ms();
  struct store_rec rec = {.id = job->id, .etag = etag, .body = body,
                          .created_ms = old->body ? old->created_ms : now,
                          .updated_ms = now};
  int rc = store_put(s, PROVD_TABLE_HUBS, &rec, NULL, 0, err);
  if (rc == PROVD_OK)
    job->result = json_incref(body);
  json_decref(body);
  return rc;
}

static int hub_remove(struct store_session *s, struct svc_job *job,
                      const struct store_rec *old, struct provd_err *err)
{
  if (!old->body) {
    svc_job_fail(job, 404, SVC_E_NO_HUB, "Hub not found");
    return PROVD_NOT_FOUND;
  }
  json_t *body = json_deep_copy(old->body);
  json_object_set_new(body, "removed", json_true());
  struct store_rec rec = *old;
  rec.body = body;
  rec.updated_ms = time_now_ms();
  int rc = store_put(s, PROVD_TABLE_HUBS, &rec, NULL, 0, err);
  json_decref(body);
  return rc;
}

static int write_hub(struct store_session *s, void *ud,
                     struct provd_err *err)
{
  struct svc_job *job = ud;
  job->fail_http = 0;
  json_decref(job->result);
  job->result = NULL;
  json_decref(job->hubs_after);
  job->hubs_after = NULL;
  json_t *all = NULL;
  int rc = hubs_read_all(s, &all, err);
  if (rc != PROVD_OK)
    return rc;
  size_t n_hubs = json_array_size(all);
  json_decref(all);
  struct store_rec old = {0};
  rc = store_get(s, PROVD_TABLE_HUBS, job->id, &old, err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
    return rc;
  rc = job->op == SVC_OP_HUB_PUT ? hub_put(s, job, &old, n_hubs, err)
                                 : hub_remove(s, job, &old, err);
  store_rec_clear(&old);
  if (rc == PROVD_OK)
    rc = hubs_read_all(s, &job->hubs_after, err);
  return rc;
}

/* Writer thread, after the commit: later registrations see the change. */
static void hub_write_done(void *ud, int status, const struct provd_err *err)
{
  struct svc_job *job = ud;
  if (status == PROVD_OK) {
    struct provd_err why;
    perr_clear(&why);
    if (hubs_apply(job->ctx->engine, job->hubs_after, &why) != PROVD_OK)
      log_error(SVC_LOG_COMP, "hub %s stored but not applied: %s", job->id,
                why.msg);
  }
  svc_write_done(ud, status, err);
}

int svc_hubs_submit(struct svc_job *job)
{
  struct store *st = job->ctx->store;
  if (job->op == SVC_OP_HUBS)
    return store_submit_read(st, read_hubs, job);
  return store_submit_write(st, write_hub, hub_write_done, job);
}
