/* Private to the service API (service_api.c: auth, routing, request
 * checks on the event loop; service_store.c: the work that runs on store
 * threads and answers from there). */
#ifndef CORE_API_SERVICE_INTERNAL_H
#define CORE_API_SERVICE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "api/api.h"
#include "api/enrollment_json.h"

/* DPS-style 6-digit error codes (HTTP status * 1000 + sub-code);
 * docs/service-api.md lists them. */
enum {
  SVC_E_BAD_REQUEST = 400000,
  SVC_E_BAD_ID = 400001,
  SVC_E_BAD_DOCUMENT = 400004,
  SVC_E_UNAUTHORIZED = 401002,
  SVC_E_FORBIDDEN = 403001,
  SVC_E_NO_ROUTE = 404000,
  SVC_E_NO_ENROLLMENT = 404201,
  SVC_E_NO_GROUP = 404202,
  SVC_E_NO_REGISTRATION = 404203,
  SVC_E_NO_CERTIFICATE = 404205,
  SVC_E_NO_HUB = 404206,
  SVC_E_METHOD = 405000,
  SVC_E_EXISTS = 409001,
  SVC_E_PRECONDITION = 412001,
  SVC_E_MEDIA_TYPE = 415001,
  SVC_E_INTERNAL = 500000,
  SVC_E_NOT_IMPLEMENTED = 501000,
  SVC_E_UNAVAILABLE = 503001
};

enum svc_op {
  SVC_OP_GET = 1,          /* GET /enrollments|enrollmentGroups/{id} */
  SVC_OP_PUT,              /* PUT .../{id} */
  SVC_OP_DELETE,           /* DELETE .../{id} */
  SVC_OP_ATTESTATION,      /* POST .../{id}/attestationmechanism */
  SVC_OP_QUERY,            /* POST .../query */
  SVC_OP_BULK,             /* POST /enrollments[/] */
  SVC_OP_REG_GET,          /* GET /registrations/{id} */
  SVC_OP_REG_DELETE,       /* DELETE /registrations/{id} */
  SVC_OP_REG_QUERY,        /* POST /registrations/{groupId}/query */
  SVC_OP_REG_LIST,         /* GET /registrations?hub=&group= (provd) */
  SVC_OP_HUBS,             /* GET /hubs (provd) */
  SVC_OP_HUB_PUT,          /* PUT /hubs/{name} (provd) */
  SVC_OP_HUB_DELETE,       /* DELETE /hubs/{name} (provd) */
  SVC_OP_EVENTS,           /* GET /events (provd) */
  SVC_OP_EXPLAIN,          /* POST /explain/{regId} (provd) */
  SVC_OP_CA_LIST,          /* GET /certificates (provd) */
  SVC_OP_CA_CODE,          /* POST .../{name}/generateVerificationCode */
  SVC_OP_CA_VERIFY,        /* POST /certificates/{name}/verify (provd) */
  SVC_OP_EVENT_GET,        /* GET /events/{seq} (provd) */
  SVC_OP_EVENTS_VERIFY,    /* GET /events/verify (provd) */
  SVC_OP_EVENT_RETRY,      /* POST /events/{seq}/retry (provd) */
  SVC_OP_POLICY,           /* GET /policy: the signing policy (provd) */
  SVC_OP_BACKUP            /* GET /backup: store + keys (provd) */
};

/* One service request handed to a store thread.  Owns everything it
 * points to except ctx and ex. */
struct svc_job {
  struct api_ctx *ctx;
  struct http_exchange *ex;
  enum svc_op op;
  const char *op_name;        /* static: "enrollment.put", ... */
  int is_write;
  int show_keys;              /* the policy may see attestation keys */
  enum enrollment_kind kind;  /* enrollment and group ops */
  enum provd_table table;
  char policy[64];            /* who asked (for the write log) */
  char id[ENROLLMENT_ID_MAX + 1];
  char if_match[ENROLLMENT_ETAG_MAX + 3]; /* normalised; "" = none */
  json_t *doc;                /* PUT: normalised document */
  const char *attestation_type; /* PUT: static */
  struct bulk_request bulk;   /* SVC_OP_BULK */
  /* listing */
  size_t page_size;
  char after_id[ENROLLMENT_ID_MAX + 1]; /* "" = from the start */
  char group[ENROLLMENT_ID_MAX + 1];    /* "" = any */
  char hub[256];                        /* hub name; "" = any */
  uint64_t after_seq;                   /* SVC_OP_EVENTS */
  uint64_t seq;                         /* SVC_OP_EVENT_GET, _RETRY */
  /* outcome of a write job, set on the writer thread */
  int fail_http;              /* 0: no logical failure */
  int fail_code;
  char fail_msg[160];
  json_t *result;             /* success body; NULL: 204 */
  json_t *hubs_after;         /* hub writes: every hub after the commit */
};

#define SVC_LOG_COMP "service"

/* ---- service_respond.c (called by service_api.c and service_store.c) ---- */
void svc_job_free(struct svc_job *job);
/* Records a write job's logical failure (answered by svc_write_done). */
void svc_job_fail(struct svc_job *job, int http, int code, const char *msg);
/* Every answer to a job goes through one of these: they respond, count,
 * log writes, and free the job. */
void svc_job_respond_json(struct svc_job *job, int status, json_t *body,
                          const struct http_header *extra, size_t n_extra);
void svc_job_respond_empty(struct svc_job *job, int status);
void svc_job_respond_error(struct svc_job *job, int status, int code,
                           const char *message);
/* 503 + Retry-After: 1 (store error or full queue). */
void svc_job_respond_unavailable(struct svc_job *job,
                                 const struct provd_err *why);
/* Counts an answer in provd_service_requests_total{op,code}. */
void svc_count_request(const char *op, int status);
/* A request-scoped error answer before any job exists (counted). */
void svc_reject(struct http_exchange *ex, const char *op, int status,
                int code, const char *message);

/* ---- service_store.c ---- */
/* Hands the job to the store.  On PROVD_OK the job will be answered and
 * freed later; otherwise the caller still owns it. */
int svc_job_submit(struct svc_job *job);

/* Answers a write job after its commit (a store_done_fn): 200 with
 * job->result, 204 without, the job's logical failure, or 503. */
void svc_write_done(void *ud, int status, const struct provd_err *err);

/* ---- service_hubs.c: /hubs (provd) ---- */
/* Same contract as svc_job_submit, for SVC_OP_HUBS and SVC_OP_HUB_*. */
int svc_hubs_submit(struct svc_job *job);
/* 0 when doc is a valid PUT /hubs/{name} body, else -1 and why. */
int svc_hub_doc_check(const json_t *doc, char *why, size_t why_cap);

/* ---- service_access.c: the permission each request needs ---- */
/* 1 when a policy holding `held` (enum service_permission) may make the
 * request op on table. */
int svc_access_allowed(enum svc_op op, enum provd_table table,
                       unsigned held);
/* What op on table needs, for the refusal: "EnrollmentWrite",
 * "(EnrollmentRead, RegistrationStatusRead) or ServiceConfig".
 * Returns out. */
char *svc_access_needs_text(enum svc_op op, enum provd_table table,
                            char *out, size_t cap);
/* 1 when answers to a policy holding `held` may carry attestation keys
 * (symmetric primaryKey / secondaryKey): EnrollmentWrite only. */
int svc_access_shows_keys(unsigned held);

/* ---- service_api.c ---- */
/* The body of POST /explain/{regId} (NULL: none): 0 when it is
 * {"authorization"?: string, "payload"?: any, "callWebhook"?: bool}. */
int svc_explain_body_check(const json_t *doc);

/* ---- service_events.c: the journal and its deliveries ---- */
/* Same contract as svc_job_submit, for the SVC_OP_EVENT* ops. */
int svc_events_submit(struct svc_job *job);

/* ---- service_backup.c ---- */
/* GET /backup[?keysOnly=true]: answers (later, from a store thread) with
 * the backup file of the store and the data dir's keys; owner only. */
void svc_backup_handle(struct api_ctx *ctx, struct http_exchange *ex,
                       const struct http_request *req,
                       const struct service_policy *policy);

#endif
