/* How the service API answers a request: every answer is counted, writes
 * are logged, and a job is freed once answered.  Shared by service_api.c
 * (the event loop) and service_store.c (store threads); it calls neither. */
#include <stdio.h>
#include <stdlib.h>

#include "api/respond.h"
#include "api/service_internal.h"
#include "util/log.h"
#include "util/metrics.h"

void svc_count_request(const char *op, int status)
{
  char labels[96];
  snprintf(labels, sizeof(labels), "op=\"%s\",code=\"%d\"", op, status);
  metrics_add("provd_service_requests_total",
              "Service API requests by operation and HTTP status", labels,
              1);
}

void svc_reject(struct http_exchange *ex, const char *op, int status,
                int code, const char *message)
{
  svc_count_request(op, status);
  api_respond_error(ex, status, code, message);
}

static void log_write(const struct svc_job *job, int status)
{
  if (!job->is_write)
    return;
  if (job->op == SVC_OP_BULK)
    log_info(SVC_LOG_COMP, "%s policy=%s mode=%s items=%zu status=%d",
             job->op_name, job->policy,
             enrollment_bulk_mode_name(job->bulk.mode), job->bulk.n,
             status);
  else
    log_info(SVC_LOG_COMP, "%s policy=%s id=%s status=%d", job->op_name,
             job->policy, job->id, status);
}

static void job_done(struct svc_job *job, int status)
{
  svc_count_request(job->op_name, status);
  log_write(job, status);
  svc_job_free(job);
}

void svc_job_respond_json(struct svc_job *job, int status, json_t *body,
                          const struct http_header *extra, size_t n_extra)
{
  if (!body) {
    svc_job_respond_error(job, 500, SVC_E_INTERNAL, "Out of memory");
    return;
  }
  api_respond_json(job->ex, status, body, extra, n_extra);
  job_done(job, status);
}

void svc_job_respond_empty(struct svc_job *job, int status)
{
  http_respond(job->ex, status, NULL, NULL, 0, NULL, 0);
  job_done(job, status);
}

void svc_job_respond_error(struct svc_job *job, int status, int code,
                           const char *message)
{
  api_respond_error(job->ex, status, code, message);
  job_done(job, status);
}

void svc_job_respond_unavailable(struct svc_job *job,
                                 const struct provd_err *why)
{
  log_warn(SVC_LOG_COMP, "%s id=%s: store unavailable: %s", job->op_name,
           job->id[0] ? job->id : "-",
           why && why->msg[0] ? why->msg : "queue full");
  /* 503 carries Retry-After: 1 (net/wire_error.h) */
  api_respond_error(job->ex, 503, SVC_E_UNAVAILABLE,
                    "Service unavailable, retry later");
  job_done(job, 503);
}

void svc_job_fail(struct svc_job *job, int http, int code, const char *msg)
{
  job->fail_http = http;
  job->fail_code = code;
  snprintf(job->fail_msg, sizeof(job->fail_msg), "%s", msg);
}

void svc_job_free(struct svc_job *job)
{
  if (!job)
    return;
  json_decref(job->hubs_after);
  json_decref(job->doc);
  json_decref(job->result);
  enrollment_bulk_clear(&job->bulk);
  free(job);
}
