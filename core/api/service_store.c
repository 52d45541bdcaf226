/* Service API work that runs on store threads: reads on a reader thread,
 * writes as one job on the writer thread (each write also appends its
 * outbox event, in the same transaction).  Every function here answers
 * the exchange itself through the svc_job_respond_* helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/service_internal.h"
#include "api/x509_json.h"
#include "engine/registration_secret.h"
#include "provd/storage.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/timefmt.h"

static int not_found_code(enum provd_table t)
{
  switch (t) {
  case PROVD_TABLE_ENROLLMENT_GROUPS:
    return SVC_E_NO_GROUP;
  case PROVD_TABLE_REGISTRATIONS:
    return SVC_E_NO_REGISTRATION;
  case PROVD_TABLE_CERTIFICATES:
    return SVC_E_NO_CERTIFICATE;
  default:
    return SVC_E_NO_ENROLLMENT;
  }
}

static const char *not_found_text(enum provd_table t)
{
  switch (t) {
  case PROVD_TABLE_ENROLLMENT_GROUPS:
    return "Enrollment group not found";
  case PROVD_TABLE_REGISTRATIONS:
    return "Registration not found";
  case PROVD_TABLE_CERTIFICATES:
    return "Certificate not found";
  default:
    return "Enrollment not found";
  }
}

static void respond_not_found(struct svc_job *job)
{
  svc_job_respond_error(job, 404, not_found_code(job->table),
                        not_found_text(job->table));
}

/* Individual enrollments show the device's registration state once it
 * registered through them (not through a group); it is never stored in
 * the enrollment itself. */
static void attach_registration_state(struct store_session *s,
                                      json_t *enrollment, const char *id)
{
  struct store_rec reg = {0};
  struct provd_err err;
  perr_clear(&err);
  if (store_get(s, PROVD_TABLE_REGISTRATIONS, id, &reg, &err) != PROVD_OK)
    return;
  registration_hide_secrets(reg.body);
  if ((!reg.group_id || !reg.group_id[0]) && json_is_object(reg.body))
    json_object_set(enrollment, "registrationState", reg.body);
  store_rec_clear(&reg);
}

/* ---- reads ---- */

/* provd extension: a registration on a hub removed from the linked hubs
 * says so (its record stays; the device gets a new hub when it next
 * registers). */
static void mark_removed_hub(struct store_session *s, json_t *body,
                             const char *hub)
{
  struct store_rec h = {0};
  struct provd_err ignored;
  if (hub && store_get(s, PROVD_TABLE_HUBS, hub, &h, &ignored) == PROVD_OK &&
      json_is_true(json_object_get(h.body, "removed")))
    json_object_set_new(body, "assignedHubRemoved", json_true());
  store_rec_clear(&h);
}

static void read_record(struct store_session *s, void *ud)
{
  struct svc_job *job = ud;
  struct store_rec rec = {0};
  struct provd_err err;
  perr_clear(&err);
  int rc = store_get(s, job->table, job->id, &rec, &err);
  if (rc == PROVD_NOT_FOUND) {
    respond_not_found(job);
    return;
  }
  if (rc != PROVD_OK || !rec.body) {
    store_rec_clear(&rec);
    svc_job_respond_unavailable(job, &err);
    return;
  }
  json_t *body = rec.body;
  rec.body = NULL;
  if (job->table == PROVD_TABLE_REGISTRATIONS) {
    registration_hide_secrets(body);
    mark_removed_hub(s, body, rec.hub);
  }
  store_rec_clear(&rec);
  int enrollment_table = job->table == PROVD_TABLE_ENROLLMENTS ||
                         job->table == PROVD_TABLE_ENROLLMENT_GROUPS;
  if (enrollment_table && !job->show_keys)
    enrollment_strip_keys(body);
  if (job->op == SVC_OP_ATTESTATION) {
    json_t *att = json_incref(json_object_get(body, "attestation"));
    json_decref(body);
    body = att ? att : json_object();
  } else if (job->table == PROVD_TABLE_ENROLLMENTS) {
    attach_registration_state(s, body, job->id);
  }
  svc_job_respond_json(job, 200, body, NULL, 0);
}

static const char *item_type(const struct svc_job *job)
{
  switch (job->table) {
  case PROVD_TABLE_ENROLLMENT_GROUPS:
    return "EnrollmentGroup";
  case PROVD_TABLE_REGISTRATIONS:
    return "DeviceRegistration";
  case PROVD_TABLE_CERTIFICATES:
    return "Certificate";
  default:
    return "Enrollment";
  }
}

/* One page of a table, DPS query style: a JSON array plus x-ms-* paging
 * headers; x-ms-continuation only when more rows exist. */
static void read_page(struct store_session *s, void *ud)
{
  struct svc_job *job = ud;
  struct provd_query q = {.struct_size = sizeof(q)};
  q.after_id = job->after_id[0] ? job->after_id : NULL;
  q.limit = job->page_size + 1; /* one more tells whether a next page exists */
  q.group_id = job->group[0] ? job->group : NULL;
  q.hub = job->hub[0] ? job->hub : NULL;
  struct store_rec *recs = NULL;
  size_t n = 0;
  struct provd_err err;
  perr_clear(&err);
  if (store_list(s, job->table, &q, &recs, &n, &err) != PROVD_OK) {
    svc_job_respond_unavailable(job, &err);
    return;
  }
  size_t shown = n > job->page_size ? job->page_size : n;
  json_t *arr = json_array();
  for (size_t i = 0; i < shown; i++) {
    json_t *body = recs[i].body;
    recs[i].body = NULL;
    if (!body)
      continue;
    /* Keys only come from single-record reads (GET, PUT answers and
     * attestationmechanism), never from a listing. */
    if (job->table == PROVD_TABLE_REGISTRATIONS)
      registration_hide_secrets(body);
    else
      enrollment_strip_keys(body);
    if (job->table == PROVD_TABLE_ENROLLMENTS)
      attach_registration_state(s, body, recs[i].id);
    json_array_append_new(arr, body);
  }
  char *next = n > shown ? continuation_encode(recs[shown - 1].id) : NULL;
  store_recs_free(recs, n);
  char max_items[24];
  snprintf(max_items, sizeof(max_items), "%zu", job->page_size);
  struct http_header hdr[3] = {{"x-ms-item-type", item_type(job)},
                               {"x-ms-max-item-count", max_items},
                               {"x-ms-continuation", next}};
  svc_job_respond_json(job, 200, arr, hdr, next ? 3 : 2);
  free(next);
}

/* ---- writes ---- */

static const char *event_type(enum provd_table t, const char *what)
{
  static const char *const names[][3] = {
      {"enrollment.created", "enrollment.updated", "enrollment.deleted"},
      {"group.created", "group.updated", "group.deleted"},
      {"registration.deleted", "registration.deleted",
       "registration.deleted"},
      {"ca.created", "ca.updated", "ca.deleted"}};
  int row = t == PROVD_TABLE_ENROLLMENT_GROUPS ? 1
            : t == PROVD_TABLE_REGISTRATIONS   ? 2
            : t == PROVD_TABLE_CERTIFICATES    ? 3
                                               : 0;
  int col = strcmp(what, "created") == 0   ? 0
            : strcmp(what, "updated") == 0 ? 1
                                           : 2;
  return names[row][col];
}

/* Events carry ids and etags only: never keys. */
static int append_event(struct store_session *s, enum provd_table t,
                        const char *what, const char *id, const char *etag,
                        struct provd_err *err)
{
  json_t *body = json_pack("{s:s, s:s}", "id", id, "etag", etag ? etag : "");
  if (!body) {
    perr_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  int rc = store_event(s, event_type(t, what), id, body, NULL, err);
  json_decref(body);
  return rc;
}

/* Stamps and stores doc (replacing `old` when it exists), then records
 * the event.  The document keeps createdDateTimeUtc across updates. */
static int store_document(struct store_session *s, enum provd_table t,
                          json_t *doc, const char *id, const char *kind,
                          const struct store_rec *old, const char *if_match,
                          int must_create, struct provd_err *err)
{
  int64_t now = time_now_ms();
  char now_text[32], etag[40];
  time_iso8601(now, now_text);
  ids_etag(etag);
  const char *created = NULL;
  if (old)
    created = json_string_value(json_object_get(old->body,
                                                "createdDateTimeUtc"));
  if (enrollment_stamp(doc, created ? created : now_text, now_text, etag) !=
      PROVD_OK) {
    perr_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  char kind_buf[32];
  snprintf(kind_buf, sizeof(kind_buf), "%s", kind ? kind : "");
  struct store_rec rec = {0};
  rec.id = (char *)id; /* store_put reads the record, never keeps it */
  rec.etag = etag;
  rec.body = doc;
  rec.created_ms = old ? old->created_ms : now;
  rec.updated_ms = now;
  rec.kind = kind_buf[0] ? kind_buf : NULL;
  int rc = store_put(s, t, &rec, if_match, must_create, err);
  if (rc != PROVD_OK)
    return rc;
  return append_event(s, t, old ? "updated" : "created", id, etag, err);
}

/* 1 when an If-Match value allows changing the record `old`. */
static int etag_matches(const char *if_match, const struct store_rec *old)
{
  if (!if_match || !if_match[0] || strcmp(if_match, "*") == 0)
    return 1;
  return old->etag && strcmp(old->etag, if_match) == 0;
}

static int check_ca_references(struct store_session *s, struct svc_job *job,
                               struct provd_err *err);

static int write_put(struct store_session *s, void *ud,
                     struct provd_err *err)
{
  struct svc_job *job = ud;
  job->fail_http = 0;
  json_decref(job->result);
  job->result = NULL;
  struct store_rec old = {0};
  int rc = store_get(s, job->table, job->id, &old, err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
    return rc;
  int exists = rc == PROVD_OK;
  const char *if_match = job->if_match[0] ? job->if_match : NULL;
  if (if_match && !exists) {
    /* If-Match: * asks for an existing record (HTTP semantics). */
    if (strcmp(if_match, "*") == 0)
      svc_job_fail(job, 412, SVC_E_PRECONDITION, "Precondition failed");
    else
      svc_job_fail(job, 404, not_found_code(job->table),
               not_found_text(job->table));
    return PROVD_NOT_FOUND;
  }
  if (exists && !etag_matches(if_match, &old)) {
    store_rec_clear(&old);
    svc_job_fail(job, 412, SVC_E_PRECONDITION, "Precondition failed");
    return PROVD_PRECONDITION_FAILED;
  }
  if (exists && job->table == PROVD_TABLE_CERTIFICATES)
    x509_ca_keep_verification(job->doc, old.body);
  if (job->table == PROVD_TABLE_ENROLLMENT_GROUPS &&
      (rc = check_ca_references(s, job, err)) != PROVD_OK) {
    store_rec_clear(&old);
    return rc;
  }
  const char *id = json_string_value(
      json_object_get(job->doc, enrollment_id_field(job->kind)));
  rc = store_document(s, job->table, job->doc, id ? id : job->id,
                      job->attestation_type, exists ? &old : NULL, if_match,
                      0, err);
  store_rec_clear(&old);
  if (rc != PROVD_OK)
    return rc;
  job->result = json_deep_copy(job->doc);
  if (job->result && job->table == PROVD_TABLE_ENROLLMENTS)
    attach_registration_state(s, job->result, job->id);
  return PROVD_OK;
}

/* ---- registered CAs ---- */

/* A group may name only CAs that exist and passed proof of possession:
 * PROVD_OK, PROVD_E_INVAL with the reason in why, or a store error. */
static int ca_references_verified(struct store_session *s, const json_t *doc,
                                  char *why, size_t why_cap,
                                  struct provd_err *err)
{
  static const char *const which[] = {"primary", "secondary"};
  for (size_t i = 0; i < 2; i++) {
    const char *name = x509_ca_reference(doc, which[i]);
    if (!name)
      continue;
    struct store_rec ca = {0};
    int rc = store_get(s, PROVD_TABLE_CERTIFICATES, name, &ca, err);
    int verified = rc == PROVD_OK &&
                   json_is_true(json_object_get(ca.body, "isVerified"));
    store_rec_clear(&ca);
    if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
      return rc;
    if (!verified) {
      snprintf(why, why_cap, "attestation.x509.caReferences.%s: CA %.64s "
               "is %s", which[i], name,
               rc == PROVD_NOT_FOUND ? "not registered" : "not verified");
      return PROVD_E_INVAL;
    }
  }
  return PROVD_OK;
}

static int check_ca_references(struct store_session *s, struct svc_job *job,
                               struct provd_err *err)
{
  char why[160];
  int rc = ca_references_verified(s, job->doc, why, sizeof(why), err);
  if (rc == PROVD_E_INVAL)
    svc_job_fail(job, 400, SVC_E_BAD_DOCUMENT, why);
  return rc;
}

/* generateVerificationCode and verify: read the CA, change it, store it
 * under a new etag. */
static int write_ca_change(struct store_session *s, void *ud,
                           struct provd_err *err)
{
  struct svc_job *job = ud;
  job->fail_http = 0;
  json_decref(job->result);
  job->result = NULL;
  struct store_rec ca = {0};
  int rc = store_get(s, PROVD_TABLE_CERTIFICATES, job->id, &ca, err);
  if (rc == PROVD_NOT_FOUND)
    svc_job_fail(job, 404, SVC_E_NO_CERTIFICATE, "Certificate not found");
  if (rc != PROVD_OK)
    return rc;
  struct provd_err why;
  perr_clear(&why);
  json_t *doc = json_deep_copy(ca.body); /* ca stays the old version */
  if (!doc)
    rc = PROVD_E_NOMEM;
  else if (job->op == SVC_OP_CA_CODE)
    rc = x509_ca_new_code(doc);
  else if ((rc = x509_ca_verify_proof(doc, json_string_value(json_object_get(
                                                job->doc, "certificate")),
                                      &why)) != PROVD_OK)
    svc_job_fail(job, 400, SVC_E_BAD_DOCUMENT, why.msg);
  if (rc == PROVD_OK)
    rc = store_document(s, PROVD_TABLE_CERTIFICATES, doc, ca.id, NULL, &ca,
                        NULL, 0, err);
  if (rc == PROVD_OK)
    job->result = json_incref(doc);
  json_decref(doc);
  store_rec_clear(&ca);
  return rc;
}

/* Shared by DELETE of enrollments, groups and registrations. */
static int write_delete(struct store_session *s, void *ud,
                        struct provd_err *err)
{
  struct svc_job *job = ud;
  job->fail_http = 0;
  struct store_rec old = {0};
  int rc = store_get(s, job->table, job->id, &old, err);
  if (rc == PROVD_NOT_FOUND) {
    svc_job_fail(job, 404, not_found_code(job->table),
             not_found_text(job->table));
    return rc;
  }
  if (rc != PROVD_OK)
    return rc;
  if (!etag_matches(job->if_match, &old)) {
    store_rec_clear(&old);
    svc_job_fail(job, 412, SVC_E_PRECONDITION, "Precondition failed");
    return PROVD_PRECONDITION_FAILED;
  }
  rc = store_del(s, job->table, old.id ? old.id : job->id,
                 job->if_match[0] ? job->if_match : NULL, err);
  if (rc == PROVD_OK)
    rc = append_event(s, job->table, "deleted", old.id ? old.id : job->id,
                      old.etag, err);
  store_rec_clear(&old);
  return rc;
}

/* ---- bulk ---- */

#define CA_REFERENCE_REFUSAL                                              \
  "attestation.x509.caReferences names a CA that is not registered or "   \
  "not verified"

struct item_outcome {
  int http;  /* 0 = success */
  int code;
  const char *text;
};

static void item_not_found(const struct svc_job *job,
                           struct item_outcome *o)
{
  o->http = 404;
  o->code = not_found_code(job->table);
  o->text = not_found_text(job->table);
}

/* Create mode asks nothing of the existing record, so it is not read:
 * the store's insert refuses an id that exists (case-insensitively, as
 * the read would), before anything of the item is written.  Seeding a
 * large fleet runs at the store's round trips per item. */
static int bulk_item_create(struct store_session *s, struct svc_job *job,
                            struct bulk_item *it, struct item_outcome *o,
                            struct provd_err *err)
{
  char why[160];
  int rc = PROVD_OK;
  if (job->table == PROVD_TABLE_ENROLLMENT_GROUPS &&
      (rc = ca_references_verified(s, it->doc, why, sizeof(why), err)) ==
          PROVD_E_INVAL) {
    *o = (struct item_outcome){400, SVC_E_BAD_DOCUMENT, CA_REFERENCE_REFUSAL};
    return PROVD_OK;
  }
  if (rc == PROVD_OK)
    rc = store_document(s, job->table, it->doc, it->id, it->attestation_type,
                        NULL, NULL, 1, err);
  if (rc == PROVD_EXISTS) {
    *o = (struct item_outcome){409, SVC_E_EXISTS, "Enrollment already exists"};
    rc = PROVD_OK;
  }
  return rc;
}

/* One bulk item.  Returns a store status when the store failed (the
 * whole job then fails, and the writer rolls all of it back); item-level
 * refusals go to *o with PROVD_OK and write nothing. */
static int bulk_item_apply(struct store_session *s, struct svc_job *job,
                           struct bulk_item *it, struct item_outcome *o,
                           struct provd_err *err)
{
  if (job->bulk.mode == BULK_CREATE)
    return bulk_item_create(s, job, it, o, err);
  struct store_rec old = {0};
  char why[160];
  int rc = store_get(s, job->table, it->id, &old, err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
    return rc;
  int exists = rc == PROVD_OK;
  enum bulk_mode m = job->bulk.mode;
  rc = PROVD_OK;
  if ((m == BULK_UPDATE_IF_MATCH || m == BULK_DELETE) && !exists) {
    item_not_found(job, o);
  } else if (m == BULK_UPDATE_IF_MATCH && !etag_matches(it->etag, &old)) {
    *o = (struct item_outcome){412, SVC_E_PRECONDITION, "Precondition failed"};
  } else if (m != BULK_DELETE && job->table == PROVD_TABLE_ENROLLMENT_GROUPS &&
             (rc = ca_references_verified(s, it->doc, why, sizeof(why),
                                          err)) != PROVD_OK) {
    if (rc == PROVD_E_INVAL)
      *o = (struct item_outcome){400, SVC_E_BAD_DOCUMENT,
                                 CA_REFERENCE_REFUSAL};
    rc = rc == PROVD_E_INVAL ? PROVD_OK : rc;
  } else if (m == BULK_DELETE) {
    const char *id = old.id ? old.id : it->id;
    rc = store_del(s, job->table, id, NULL, err);
    if (rc == PROVD_OK)
      rc = append_event(s, job->table, "deleted", id, old.etag, err);
  } else {
    rc = store_document(s, job->table, it->doc, it->id, it->attestation_type,
                        exists ? &old : NULL,
                        m == BULK_UPDATE_IF_MATCH ? it->etag : NULL, 0, err);
  }
  store_rec_clear(&old);
  return rc;
}

static json_t *bulk_error(const struct svc_job *job, const char *id,
                          const struct item_outcome *o)
{
  return json_pack("{s:s, s:i, s:s}", enrollment_id_field(job->kind), id,
                   "errorCode", o->code, "errorStatus", o->text);
}

static int write_bulk(struct store_session *s, void *ud,
                      struct provd_err *err)
{
  struct svc_job *job = ud;
  job->fail_http = 0;
  json_decref(job->result);
  json_t *errors = json_array();
  job->result = json_pack("{s:b, s:o}", "isSuccessful", 1, "errors", errors);
  if (!job->result) {
    perr_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  for (size_t i = 0; i < job->bulk.n; i++) {
    struct bulk_item *it = &job->bulk.items[i];
    struct item_outcome o = {0, 0, NULL};
    /* No savepoint per item: a refused item wrote nothing, and a store
     * failure fails the job, whose own level the writer rolls back. */
    int rc = bulk_item_apply(s, job, it, &o, err);
    if (rc != PROVD_OK)
      return rc;
    if (o.http) {
      json_array_append_new(errors, bulk_error(job, it->id, &o));
      json_object_set_new(job->result, "isSuccessful", json_false());
    }
  }
  return PROVD_OK;
}

/* ---- completion of writes (writer thread, after the commit) ---- */

void svc_write_done(void *ud, int status, const struct provd_err *err)
{
  struct svc_job *job = ud;
  if (status == PROVD_OK && job->result) {
    json_t *body = job->result;
    job->result = NULL;
    svc_job_respond_json(job, 200, body, NULL, 0);
  } else if (status == PROVD_OK) {
    svc_job_respond_empty(job, 204);
  } else if (job->fail_http) {
    svc_job_respond_error(job, job->fail_http, job->fail_code,
                          job->fail_msg);
  } else {
    svc_job_respond_unavailable(job, err);
  }
}

int svc_job_submit(struct svc_job *job)
{
  struct store *st = job->ctx->store;
  if (!st)
    return PROVD_E_UNAVAILABLE;
  switch (job->op) {
  case SVC_OP_GET:
  case SVC_OP_ATTESTATION:
  case SVC_OP_REG_GET:
    return store_submit_read(st, read_record, job);
  case SVC_OP_QUERY:
  case SVC_OP_REG_QUERY:
  case SVC_OP_REG_LIST:
    return store_submit_read(st, read_page, job);
  case SVC_OP_HUBS:
  case SVC_OP_HUB_PUT:
  case SVC_OP_HUB_DELETE:
    return svc_hubs_submit(job);
  case SVC_OP_EVENTS:
  case SVC_OP_EVENT_GET:
  case SVC_OP_EVENTS_VERIFY:
  case SVC_OP_EVENT_RETRY:
    return svc_events_submit(job);
  case SVC_OP_PUT:
    return store_submit_write(st, write_put, svc_write_done, job);
  case SVC_OP_DELETE:
  case SVC_OP_REG_DELETE:
    return store_submit_write(st, write_delete, svc_write_done, job);
  case SVC_OP_BULK:
    return store_submit_write(st, write_bulk, svc_write_done, job);
  case SVC_OP_CA_LIST:
    return store_submit_read(st, read_page, job);
  case SVC_OP_CA_CODE:
  case SVC_OP_CA_VERIFY:
    return store_submit_write(st, write_ca_change, svc_write_done, job);
  case SVC_OP_EXPLAIN:
  case SVC_OP_POLICY:
  case SVC_OP_BACKUP:
    break; /* answered without a job (engine, at once, service_backup.c) */
  }
  return PROVD_E_INTERNAL;
}
