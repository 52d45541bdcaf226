/* The DPS service API (enrollment management REST) and provd's admin
 * extensions.  On the event loop: authenticate the SharedAccessSignature,
 * route, check headers and bodies, validate documents; then hand a job to
 * the store (service_store.c), which answers from its own thread.
 * docs/service-api.md describes the wire behaviour. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/json_body.h"
#include "api/respond.h"
#include "api/service_internal.h"
#include "api/x509_json.h"
#include "engine/engine.h"
#include "net/wire_error.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/sas.h"
#include "util/url.h"

#define CLOCK_SKEW_S 300 /* token expiry skew (the C# SDK allows 5 min) */
#define API_VERSION_MAX 64
#define SVC_SEGMENTS_MAX 4
#define SEGMENT_MAX 512 /* decoded; ids are checked to 128 later */
#define QUERY_TEXT_MAX 4096
#define EVENTS_LIMIT_DEFAULT 100

/* ---- authentication ---- */

/* sr names the service host, or a path below it ("host/enrollments"). */
static int resource_ok(const struct api_ctx *ctx, const char *sr_raw)
{
  char sr[SAS_MAX_TOKEN];
  if (url_decode(sr_raw, strlen(sr_raw), sr, sizeof(sr)) < 0)
    return 0;
  size_t host_len = strlen(ctx->service_host);
  if (host_len == 0 || strncasecmp(sr, ctx->service_host, host_len) != 0)
    return 0;
  return sr[host_len] == '\0' || sr[host_len] == '/';
}

/* The refusal of a genuine token that lives too long: the caller holds
 * the key, so it may learn exactly what to change. */
#define LIFETIME_MESSAGE_MAX 200

static const char *lifetime_message(const struct api_ctx *ctx,
                                    int64_t lifetime, char *out, size_t cap)
{
  snprintf(out, cap, "The token is valid for %lld s more; this server "
           "accepts service tokens valid for at most %lld s "
           "(limits.max_service_token_lifetime)", (long long)lifetime,
           ctx->cfg->max_service_token_lifetime_s);
  return out;
}

/* The policy the request is signed with, or NULL (why says why, for the
 * log; *answer is what the client is told: "Unauthorized" unless the
 * token is genuine and only its lifetime is refused). */
static const struct service_policy *authenticate(
    const struct api_ctx *ctx, const struct http_request *req,
    const char **why, const char **answer, char *answer_buf,
    size_t answer_cap)
{
  const char *auth = http_request_header(req, "Authorization");
  struct sas_token tok;
  struct provd_err err;
  *answer = "Unauthorized";
  if (!auth) {
    *why = "no Authorization header";
    return NULL;
  }
  if (sas_parse(auth, &tok, &err) != 0) {
    *why = "malformed token";
    return NULL;
  }
  const struct service_policy *p = api_policy_find(ctx, tok.skn);
  if (!p) {
    /* Check the signature anyway, against a key nobody has, so an
     * unknown policy name takes as long as a wrong signature. */
    static const uint8_t no_key[32];
    (void)sas_signature_ok(&tok, no_key, sizeof(no_key));
    *why = "unknown policy (skn)";
    return NULL;
  }
  if (!sas_signature_ok(&tok, p->key, p->key_len)) {
    *why = "bad signature";
    return NULL;
  }
  int64_t now = (int64_t)time(NULL);
  if (sas_expired(&tok, now, CLOCK_SKEW_S)) {
    *why = "token expired";
    return NULL;
  }
  if (!resource_ok(ctx, tok.sr_raw)) {
    *why = "token resource (sr) is not this service";
    return NULL;
  }
  if (sas_expiry_too_far(tok.se, now, ctx->cfg->max_service_token_lifetime_s,
                         CLOCK_SKEW_S)) {
    *why = "token lifetime beyond limits.max_service_token_lifetime";
    *answer = lifetime_message(ctx, tok.se - now, answer_buf, answer_cap);
    return NULL;
  }
  return p;
}

/* ---- routing ---- */

/* The path as the service API routes it: segments percent-decoded. */
struct svc_path {
  size_t n;
  char seg[SVC_SEGMENTS_MAX][SEGMENT_MAX];
};

/* 0, or the HTTP status to answer: 404 (shape), 400 (bad escape). */
static int decode_path(const struct path_parts *raw,
                       enum path_split_status split, struct svc_path *p)
{
  if (split == PATH_SEGMENT_TOO_LONG)
    return 400;
  if (split != PATH_OK || raw->n > SVC_SEGMENTS_MAX)
    return 404;
  for (p->n = 0; p->n < raw->n; p->n++) {
    const char *s = raw->seg[p->n];
    if (url_decode(s, strlen(s), p->seg[p->n], SEGMENT_MAX) < 0)
      return 400;
  }
  return 0;
}

struct route {
  enum svc_op op;
  const char *op_name;
  enum provd_table table;
  enum enrollment_kind kind;
  const char *id;   /* into svc_path, or NULL */
  const char *allow; /* for 405 */
  int status;       /* 0 = routed; else 404 / 405 */
};

struct collection {
  const char *name;
  enum provd_table table;
  enum enrollment_kind kind;
  const char *prefix; /* op names */
};

static const struct collection COLLECTIONS[] = {
    {"enrollments", PROVD_TABLE_ENROLLMENTS, ENROLLMENT_INDIVIDUAL,
     "enrollment"},
    {"enrollmentGroups", PROVD_TABLE_ENROLLMENT_GROUPS, ENROLLMENT_GROUP,
     "group"},
    {"registrations", PROVD_TABLE_REGISTRATIONS, ENROLLMENT_INDIVIDUAL,
     "registration"},
};

static void set_op(struct route *r, enum svc_op op, const char *name)
{
  r->op = op;
  r->op_name = name;
  r->status = 0;
}

static void no_method(struct route *r, const char *allow)
{
  r->status = 405;
  r->allow = allow;
}

static int is_method(const char *m, const char *want)
{
  return strcmp(m, want) == 0;
}

/* /enrollments[/] and /enrollmentGroups[/]: bulk.  /registrations: the
 * provd listing. */
static void route_collection(const struct collection *c, const char *m,
                             struct route *r)
{
  if (c->table == PROVD_TABLE_REGISTRATIONS) {
    if (is_method(m, "GET"))
      set_op(r, SVC_OP_REG_LIST, "registration.list");
    else
      no_method(r, "GET");
  } else if (is_method(m, "POST")) {
    set_op(r, SVC_OP_BULK, c->kind == ENROLLMENT_GROUP ? "group.bulk"
                                                       : "enrollment.bulk");
  } else {
    no_method(r, "POST");
  }
}

static void route_item(const struct collection *c, const char *m,
                       const char *seg, struct route *r)
{
  int group = c->kind == ENROLLMENT_GROUP;
  r->id = seg;
  if (c->table == PROVD_TABLE_REGISTRATIONS) {
    if (is_method(m, "GET"))
      set_op(r, SVC_OP_REG_GET, "registration.get");
    else if (is_method(m, "DELETE"))
      set_op(r, SVC_OP_REG_DELETE, "registration.delete");
    else
      no_method(r, "GET, DELETE");
  } else if (is_method(m, "POST") && strcasecmp(seg, "query") == 0) {
    r->id = NULL;
    set_op(r, SVC_OP_QUERY, group ? "group.query" : "enrollment.query");
  } else if (is_method(m, "GET")) {
    set_op(r, SVC_OP_GET, group ? "group.get" : "enrollment.get");
  } else if (is_method(m, "PUT")) {
    set_op(r, SVC_OP_PUT, group ? "group.put" : "enrollment.put");
  } else if (is_method(m, "DELETE")) {
    set_op(r, SVC_OP_DELETE, group ? "group.delete" : "enrollment.delete");
  } else {
    no_method(r, "GET, PUT, DELETE");
  }
}

/* /{collection}/{id}/attestationmechanism, /registrations/{id}/query */
static void route_action(const struct collection *c, const char *m,
                         const struct svc_path *p, struct route *r)
{
  int regs = c->table == PROVD_TABLE_REGISTRATIONS;
  const char *want = regs ? "query" : "attestationmechanism";
  if (strcasecmp(p->seg[2], want) != 0)
    return;
  r->id = p->seg[1];
  if (!is_method(m, "POST"))
    no_method(r, "POST");
  else if (regs)
    set_op(r, SVC_OP_REG_QUERY, "registration.query");
  else
    set_op(r, SVC_OP_ATTESTATION, c->kind == ENROLLMENT_GROUP
                                      ? "group.attestation"
                                      : "enrollment.attestation");
}

static void route_extension(const char *name, const char *m,
                            struct route *r)
{
  if (strcasecmp(name, "policy") == 0 || strcasecmp(name, "backup") == 0) {
    int policy = strcasecmp(name, "policy") == 0;
    if (!is_method(m, "GET"))
      no_method(r, "GET");
    else if (policy)
      set_op(r, SVC_OP_POLICY, "policy.get");
    else
      set_op(r, SVC_OP_BACKUP, "backup");
    return;
  }
  int hubs = strcasecmp(name, "hubs") == 0;
  if (!hubs && strcasecmp(name, "events") != 0)
    return;
  if (!is_method(m, "GET"))
    no_method(r, "GET");
  else if (hubs)
    set_op(r, SVC_OP_HUBS, "hubs.list");
  else
    set_op(r, SVC_OP_EVENTS, "events.list");
}

/* /hubs/{name} */
static void route_hub(const char *m, const char *name, struct route *r)
{
  r->id = name;
  if (is_method(m, "PUT"))
    set_op(r, SVC_OP_HUB_PUT, "hub.put");
  else if (is_method(m, "DELETE"))
    set_op(r, SVC_OP_HUB_DELETE, "hub.delete");
  else
    no_method(r, "PUT, DELETE");
}

/* /events/verify, /events/{seq}, /events/{seq}/retry */
static void route_event(const char *m, const struct svc_path *p, size_t n,
                        struct route *r)
{
  if (n == 2 && strcasecmp(p->seg[1], "verify") == 0) {
    if (is_method(m, "GET"))
      set_op(r, SVC_OP_EVENTS_VERIFY, "events.verify");
    else
      no_method(r, "GET");
    return;
  }
  r->id = p->seg[1];
  if (n == 2 && is_method(m, "GET"))
    set_op(r, SVC_OP_EVENT_GET, "events.get");
  else if (n == 2)
    no_method(r, "GET");
  else if (strcasecmp(p->seg[2], "retry") != 0)
    r->id = NULL;
  else if (is_method(m, "POST"))
    set_op(r, SVC_OP_EVENT_RETRY, "events.retry");
  else
    no_method(r, "POST");
}

/* /certificates[/{name}[/generateVerificationCode|/verify]]: the CAs
 * registered with provd (x509_json.h), DPS's "verified certificates". */
static void route_certificates(const char *m, const struct svc_path *p,
                               size_t n, struct route *r)
{
  r->table = PROVD_TABLE_CERTIFICATES;
  r->id = n >= 2 ? p->seg[1] : NULL;
  if (n == 1 && is_method(m, "GET"))
    set_op(r, SVC_OP_CA_LIST, "ca.list");
  else if (n == 1)
    no_method(r, "GET");
  else if (n == 2 && is_method(m, "GET"))
    set_op(r, SVC_OP_GET, "ca.get");
  else if (n == 2 && is_method(m, "PUT"))
    set_op(r, SVC_OP_PUT, "ca.put");
  else if (n == 2 && is_method(m, "DELETE"))
    set_op(r, SVC_OP_DELETE, "ca.delete");
  else if (n == 2)
    no_method(r, "GET, PUT, DELETE");
  else if (n == 3 && strcasecmp(p->seg[2], "generateVerificationCode") &&
           strcasecmp(p->seg[2], "verify"))
    return;
  else if (n == 3 && !is_method(m, "POST"))
    no_method(r, "POST");
  else if (n == 3 && strcasecmp(p->seg[2], "verify") == 0)
    set_op(r, SVC_OP_CA_VERIFY, "ca.verify");
  else if (n == 3)
    set_op(r, SVC_OP_CA_CODE, "ca.code");
}

static void route_request(const char *m, const struct svc_path *p,
                          struct route *r)
{
  memset(r, 0, sizeof(*r));
  r->status = 404;
  r->op_name = "unknown";
  /* "/x/" is "/x" (Node posts bulk operations to "/enrollments/"). */
  size_t n = p->n;
  if (n == 2 && p->seg[1][0] == '\0')
    n = 1;
  for (size_t i = 0; i < n; i++) {
    if (p->seg[i][0] == '\0')
      return;
  }
  if (n == 1)
    route_extension(p->seg[0], m, r);
  if (n == 2 && strcasecmp(p->seg[0], "hubs") == 0)
    route_hub(m, p->seg[1], r);
  if ((n == 2 || n == 3) && strcasecmp(p->seg[0], "events") == 0)
    route_event(m, p, n, r);
  if (n <= 3 && strcasecmp(p->seg[0], "certificates") == 0)
    route_certificates(m, p, n, r);
  if (n == 2 && strcasecmp(p->seg[0], "explain") == 0) {
    r->id = p->seg[1];
    if (is_method(m, "POST"))
      set_op(r, SVC_OP_EXPLAIN, "explain");
    else
      no_method(r, "POST");
  }
  for (size_t i = 0; i < sizeof(COLLECTIONS) / sizeof(COLLECTIONS[0]); i++) {
    const struct collection *c = &COLLECTIONS[i];
    if (strcasecmp(p->seg[0], c->name) != 0)
      continue;
    r->table = c->table;
    r->kind = c->kind;
    if (n == 1)
      route_collection(c, m, r);
    else if (n == 2)
      route_item(c, m, p->seg[1], r);
    else if (n == 3)
      route_action(c, m, p, r);
  }
}

/* ---- request checks ---- */

static int needs_write(enum svc_op op)
{
  return op == SVC_OP_PUT || op == SVC_OP_DELETE || op == SVC_OP_BULK ||
         op == SVC_OP_REG_DELETE || op == SVC_OP_CA_CODE ||
         op == SVC_OP_CA_VERIFY || op == SVC_OP_EVENT_RETRY ||
         op == SVC_OP_HUB_PUT || op == SVC_OP_HUB_DELETE;
}

struct prep_error {
  int status;
  int code;
  const char *msg;
};

static int prep_fail(struct prep_error *e, int status, int code,
                     const char *msg)
{
  e->status = status;
  e->code = code;
  e->msg = msg;
  return -1;
}

/* Reads the body by the one policy (api/json_body.h); NULL with *e set
 * when refused, NULL without when an optional body is absent. */
static json_t *read_body(const struct http_request *req, size_t max_body,
                         enum json_body_flags flags, struct prep_error *e)
{
  enum json_body_status why;
  json_t *doc = json_body_read(http_request_header(req, "Content-Type"),
                               req->body, req->body_len, max_body, flags,
                               &why);
  e->status = 0;
  switch (why) {
  case JSON_BODY_OK:
    break;
  case JSON_BODY_MEDIA_TYPE:
    prep_fail(e, 415, SVC_E_MEDIA_TYPE,
              "Content-Type must be application/json");
    break;
  case JSON_BODY_TOO_LARGE: {
    struct wire_error w = wire_error_of("PAYLOAD_TOO_LARGE");
    prep_fail(e, w.http_status, w.error_code, w.message);
    break;
  }
  default:
    prep_fail(e, 400, SVC_E_BAD_REQUEST, json_body_problem(why));
    break;
  }
  return doc;
}

static int if_match_header(const struct http_request *req,
                           struct svc_job *job)
{
  const char *im = http_request_header(req, "If-Match");
  job->if_match[0] = '\0';
  if (!im)
    return 0;
  return enrollment_etag_normalize(im, job->if_match,
                                   sizeof(job->if_match));
}

static int paging_headers(const struct http_request *req,
                          struct svc_job *job)
{
  if (page_size_parse(http_request_header(req, "x-ms-max-item-count"),
                      &job->page_size) != 0)
    return -1;
  const char *cont = http_request_header(req, "x-ms-continuation");
  job->after_id[0] = '\0';
  if (cont && cont[0] &&
      continuation_decode(cont, job->after_id, sizeof(job->after_id)) != 0)
    return -1;
  return 0;
}

/* A decimal in [0, max]; -1 otherwise. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  size_t i = 0;
  for (; s[i] >= '0' && s[i] <= '9'; i++) {
    if (i >= 19)
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (i == 0 || s[i] || v > max)
    return -1;
  *out = v;
  return 0;
}

/* The hub filter takes a hub name or its host name; rows hold names. */
static void resolve_hub(const struct engine *engine, const char *given,
                        char *out, size_t out_cap)
{
  const char *name = engine ? engine_hub_name(engine, given) : NULL;
  snprintf(out, out_cap, "%s", name ? name : given);
}

/* ---- per-operation preparation (loop thread) ---- */

static int prep_put(const struct http_request *req, struct svc_job *job,
                    struct prep_error *e, char *detail, size_t detail_cap)
{
  job->doc = read_body(req, job->ctx->cfg->max_body_bytes,
                       JSON_BODY_REQUIRED, e);
  if (!job->doc)
    return -1;
  struct provd_err err;
  perr_clear(&err);
  int rc = job->table == PROVD_TABLE_CERTIFICATES
               ? x509_ca_normalize(job->doc, job->id, &err)
               : enrollment_normalize(job->kind, job->doc, job->id,
                                      &job->attestation_type, &err);
  if (rc != PROVD_OK) {
    snprintf(detail, detail_cap, "%s", err.msg);
    return prep_fail(e, 400, SVC_E_BAD_DOCUMENT, detail);
  }
  const char *policy =
      json_string_value(json_object_get(job->doc, "allocationPolicy"));
  if (policy && !enrollment_policy_is_dps(policy) &&
      !engine_allocation_policy_known(job->ctx->engine, policy)) {
    snprintf(detail, detail_cap, "allocationPolicy '%.64s': no allocation "
             "plugin of this server implements it", policy);
    return prep_fail(e, 400, SVC_E_BAD_DOCUMENT, detail);
  }
  return 0;
}

static int prep_bulk(const struct http_request *req, struct svc_job *job,
                     struct prep_error *e, char *detail, size_t detail_cap)
{
  json_t *body = read_body(req, job->ctx->cfg->max_body_bytes,
                           JSON_BODY_REQUIRED, e);
  if (!body)
    return -1;
  struct provd_err err;
  perr_clear(&err);
  int rc = enrollment_bulk_parse(job->kind, body, &job->bulk, &err);
  json_decref(body);
  if (rc != PROVD_OK) {
    snprintf(detail, detail_cap, "%s", err.msg);
    return prep_fail(e, 400, SVC_E_BAD_DOCUMENT, detail);
  }
  return 0;
}

/* Query bodies: {"query": "<any text>"} or nothing; any query selects
 * every row (paging still applies). */
static int prep_query(const struct http_request *req, struct svc_job *job,
                      struct prep_error *e)
{
  json_t *body = read_body(req, job->ctx->cfg->max_body_bytes,
                           JSON_BODY_OPTIONAL, e);
  if (e->status)
    return -1;
  json_t *q = json_object_get(body, "query");
  int ok = !q || (json_is_string(q) && json_string_length(q) <= QUERY_TEXT_MAX);
  json_decref(body);
  if (!ok)
    return prep_fail(e, 400, SVC_E_BAD_REQUEST,
                     "The query must be {\"query\": \"<text>\"}");
  if (paging_headers(req, job) != 0)
    return prep_fail(e, 400, SVC_E_BAD_REQUEST,
                     "Bad x-ms-max-item-count or x-ms-continuation");
  return 0;
}

/* 1 when the query parameter is present (decoded into out), 0 when it is
 * absent, -1 when it is malformed or too long. */
static int query_param(const struct http_request *req, const char *name,
                       char *out, size_t cap)
{
  int rc = http_query_param(req, name, out, cap);
  if (rc == -1) {
    out[0] = '\0';
    return 0;
  }
  return rc < 0 ? -1 : 1;
}

static int prep_reg_list(const struct http_request *req, struct svc_job *job,
                         struct prep_error *e)
{
  char hub[256];
  int has = query_param(req, "group", job->group, sizeof(job->group));
  if (has < 0 || (has && !enrollment_id_valid(job->group)))
    return prep_fail(e, 400, SVC_E_BAD_ID, "group is not a valid id");
  has = query_param(req, "hub", hub, sizeof(hub));
  if (has < 0 || (has && !hub[0]))
    return prep_fail(e, 400, SVC_E_BAD_REQUEST, "hub is not a hub name");
  if (has)
    resolve_hub(job->ctx->engine, hub, job->hub, sizeof(job->hub));
  if (paging_headers(req, job) != 0)
    return prep_fail(e, 400, SVC_E_BAD_REQUEST,
                     "Bad x-ms-max-item-count or x-ms-continuation");
  return 0;
}

static int prep_events(const struct http_request *req, struct svc_job *job,
                       struct prep_error *e)
{
  char text[32];
  uint64_t limit = EVENTS_LIMIT_DEFAULT;
  job->after_seq = 0;
  int has = query_param(req, "after", text, sizeof(text));
  if (has < 0 || (has && parse_u64(text, INT64_MAX, &job->after_seq) != 0))
    return prep_fail(e, 400, SVC_E_BAD_REQUEST, "after must be a number");
  has = query_param(req, "limit", text, sizeof(text));
  if (has < 0 ||
      (has && (parse_u64(text, UINT32_MAX, &limit) != 0 || limit == 0)))
    return prep_fail(e, 400, SVC_E_BAD_REQUEST,
                     "limit must be a positive number");
  job->page_size = limit > PAGE_SIZE_MAX ? PAGE_SIZE_MAX : (size_t)limit;
  return 0;
}

static int prep_hub_put(const struct http_request *req, struct svc_job *job,
                        struct prep_error *e, char *detail,
                        size_t detail_cap)
{
  job->doc = read_body(req, job->ctx->cfg->max_body_bytes,
                       JSON_BODY_REQUIRED, e);
  if (!job->doc)
    return -1;
  if (svc_hub_doc_check(job->doc, detail, detail_cap) != 0)
    return prep_fail(e, 400, SVC_E_BAD_DOCUMENT, detail);
  return 0;
}

static int prep_job(const struct http_request *req, struct svc_job *job,
                    struct prep_error *e, char *detail, size_t detail_cap)
{
  switch (job->op) {
  case SVC_OP_PUT:
    return prep_put(req, job, e, detail, detail_cap);
  case SVC_OP_BULK:
    return prep_bulk(req, job, e, detail, detail_cap);
  case SVC_OP_QUERY:
  case SVC_OP_REG_QUERY:
    return prep_query(req, job, e);
  case SVC_OP_REG_LIST:
    return prep_reg_list(req, job, e);
  case SVC_OP_EVENTS:
    return prep_events(req, job, e);
  case SVC_OP_EVENT_GET:
  case SVC_OP_EVENT_RETRY:
    if (parse_u64(job->id, INT64_MAX, &job->seq) != 0 || job->seq == 0)
      return prep_fail(e, 400, SVC_E_BAD_REQUEST,
                       "The event's sequence number is not valid");
    return 0;
  case SVC_OP_HUB_PUT:
    return prep_hub_put(req, job, e, detail, detail_cap);
  case SVC_OP_CA_VERIFY: /* {"certificate": the proof of possession} */
    job->doc = read_body(req, job->ctx->cfg->max_body_bytes,
                         JSON_BODY_REQUIRED, e);
    return job->doc ? 0 : -1;
  default:
    return 0;
  }
}

/* Copies the route into a new job and checks what every op shares. */
static struct svc_job *new_job(struct api_ctx *ctx, struct http_exchange *ex,
                               const struct http_request *req,
                               const struct route *r,
                               const struct service_policy *p,
                               struct prep_error *e)
{
  struct svc_job *job = calloc(1, sizeof(*job));
  if (!job) {
    prep_fail(e, 500, SVC_E_INTERNAL, "Out of memory");
    return NULL;
  }
  job->ctx = ctx;
  job->ex = ex;
  job->op = r->op;
  job->op_name = r->op_name;
  job->is_write = needs_write(r->op);
  job->show_keys = svc_access_shows_keys(p->permissions);
  job->kind = r->kind;
  job->table = r->table;
  job->page_size = PAGE_SIZE_DEFAULT;
  snprintf(job->policy, sizeof(job->policy), "%s", p->name);
  if (r->id) {
    if (!enrollment_id_valid(r->id)) {
      prep_fail(e, 400, SVC_E_BAD_ID, "The id in the path is not valid");
      svc_job_free(job);
      return NULL;
    }
    snprintf(job->id, sizeof(job->id), "%s", r->id);
    /* registrations/{groupId}/query lists the group's registrations */
    if (r->op == SVC_OP_REG_QUERY)
      snprintf(job->group, sizeof(job->group), "%s", r->id);
  }
  if (if_match_header(req, job) != 0) {
    prep_fail(e, 400, SVC_E_BAD_REQUEST, "Bad If-Match header");
    svc_job_free(job);
    return NULL;
  }
  return job;
}

/* ---- the entry point ---- */

/* 403 naming what the request needs (the caller is authenticated: it
 * may know its own policy's permissions). */
static void refuse_permission(struct http_exchange *ex, const struct route *r,
                              const struct service_policy *policy)
{
  char needs[160], msg[320];
  svc_access_needs_text(r->op, r->table, needs, sizeof(needs));
  snprintf(msg, sizeof(msg), "The access policy '%s' lacks the permission "
           "this request needs: %s", policy->name, needs);
  log_info(SVC_LOG_COMP, "403 %s: policy %s lacks %s", r->op_name,
           policy->name, needs);
  svc_reject(ex, r->op_name, 403, SVC_E_FORBIDDEN, msg);
}

/* Answers 401/400/404/405/403 before any work; 0 when the request may
 * proceed with *r routed (ids point into *parts) and *policy set. */
static int gatekeep(struct api_ctx *ctx, struct http_exchange *ex,
                    const struct http_request *req,
                    const struct path_parts *raw,
                    enum path_split_status split, struct svc_path *parts,
                    struct route *r, const struct service_policy **policy)
{
  const char *why = NULL, *answer = NULL;
  char answer_buf[LIFETIME_MESSAGE_MAX];
  *policy = authenticate(ctx, req, &why, &answer, answer_buf,
                         sizeof(answer_buf));
  if (!*policy) {
    log_info(SVC_LOG_COMP, "401 %s %s from %s: %s", req->method, req->path,
             req->peer_addr ? req->peer_addr : "?", why);
    svc_reject(ex, "unauthorized", 401, SVC_E_UNAUTHORIZED, answer);
    return -1;
  }
  char version[API_VERSION_MAX];
  if (query_param(req, "api-version", version, sizeof(version)) != 1 ||
      !version[0]) {
    svc_reject(ex, "bad_request", 400, SVC_E_BAD_REQUEST,
               "The api-version query parameter is required");
    return -1;
  }
  int st = decode_path(raw, split, parts);
  if (st == 400) {
    svc_reject(ex, "bad_request", 400, SVC_E_BAD_ID, "Malformed path");
    return -1;
  }
  if (st == 0)
    route_request(req->method, parts, r);
  if (st == 404 || r->status == 404) {
    svc_reject(ex, "unknown", 404, SVC_E_NO_ROUTE, "Not found");
    return -1;
  }
  if (r->status == 405) {
    struct http_header allow = {"Allow", r->allow};
    svc_count_request(r->op_name, 405);
    api_respond_error_with(ex, 405, SVC_E_METHOD, "Method not allowed",
                           &allow, 1);
    return -1;
  }
  if (!svc_access_allowed(r->op, r->table, (*policy)->permissions)) {
    refuse_permission(ex, r, *policy);
    return -1;
  }
  return 0;
}

static void explain_done(void *ud, struct reg_outcome *out)
{
  struct http_exchange *ex = ud;
  svc_count_request("explain", out->http_status);
  api_respond_outcome(ex, out);
}

int svc_explain_body_check(const json_t *doc)
{
  const json_t *auth = json_object_get(doc, "authorization");
  const json_t *call_webhook = json_object_get(doc, "callWebhook");
  return (auth && !json_is_string(auth)) ||
                 (call_webhook && !json_is_boolean(call_webhook))
             ? -1
             : 0;
}

/* POST /explain/{regId} {"authorization"?: device SAS, "payload"?: ..}:
 * the engine's dry run, answered to an authenticated operator. */
static void handle_explain(struct api_ctx *ctx, struct http_exchange *ex,
                           const struct http_request *req, const char *id)
{
  if (!enrollment_id_valid(id)) {
    svc_reject(ex, "explain", 400, SVC_E_BAD_ID,
               "The id in the path is not valid");
    return;
  }
  struct prep_error e;
  json_t *doc = read_body(req, ctx->cfg->max_body_bytes, JSON_BODY_OPTIONAL,
                          &e);
  if (e.status) {
    svc_reject(ex, "explain", e.status, e.code, e.msg);
    return;
  }
  const json_t *auth = json_object_get(doc, "authorization");
  const json_t *call_webhook = json_object_get(doc, "callWebhook");
  if (svc_explain_body_check(doc) != 0) {
    json_decref(doc);
    svc_reject(ex, "explain", 400, SVC_E_BAD_REQUEST,
               "The body must be {\"authorization\"?: string, "
               "\"payload\"?: any, \"callWebhook\"?: bool}");
    return;
  }
  struct reg_request *r = calloc(1, sizeof(*r));
  if (!r) {
    json_decref(doc);
    svc_reject(ex, "explain", 500, SVC_E_INTERNAL, "Out of memory");
    return;
  }
  r->op = REG_EXPLAIN;
  snprintf(r->registration_id, sizeof(r->registration_id), "%s", id);
  r->authorization = auth ? strdup(json_string_value(auth)) : NULL;
  r->call_webhook = json_is_true(call_webhook);
  r->body = json_pack("{s:s}", "registrationId", id);
  if (json_object_get(doc, "payload"))
    json_object_set(r->body, "payload", json_object_get(doc, "payload"));
  ids_uuid(r->trace_id);
  json_decref(doc);
  engine_submit(ctx->engine, r, explain_done, ex);
}

/* GET /policy: what the console may offer.  canWrite (writes to
 * enrollments) predates the permissions list and stays for old clients. */
static void respond_policy(const struct api_ctx *ctx, struct http_exchange *ex,
                           const struct service_policy *policy)
{
  json_t *names = json_array();
  for (unsigned bit = 1; bit & PERM_ALL; bit <<= 1) {
    if (policy->permissions & bit)
      json_array_append_new(names,
                            json_string(service_permission_name(bit)));
  }
  svc_count_request("policy.get", 200);
  api_respond_json(ex, 200,
                   json_pack("{s:s,s:b,s:o,s:I,s:s}", "name", policy->name,
                             "canWrite",
                             (policy->permissions & PERM_ENROLLMENT_WRITE) != 0,
                             "permissions", names, "maxTokenLifetimeSeconds",
                             (json_int_t)ctx->cfg->max_service_token_lifetime_s,
                             "idScope", ctx->cfg->id_scope),
                   NULL, 0);
}

void service_api_handle(struct api_ctx *ctx, struct http_exchange *ex,
                        const struct path_parts *raw,
                        enum path_split_status split)
{
  const struct http_request *req = http_exchange_request(ex);
  struct svc_path parts;
  struct route r;
  const struct service_policy *policy = NULL;
  if (gatekeep(ctx, ex, req, raw, split, &parts, &r, &policy) != 0)
    return;
  if (r.op == SVC_OP_EXPLAIN) {
    handle_explain(ctx, ex, req, r.id);
    return;
  }
  if (r.op == SVC_OP_BACKUP) {
    svc_backup_handle(ctx, ex, req, policy);
    return;
  }
  if (r.op == SVC_OP_POLICY) {
    respond_policy(ctx, ex, policy);
    return;
  }
  struct prep_error e = {500, SVC_E_INTERNAL, "Internal error"};
  char detail[512];
  struct svc_job *job = new_job(ctx, ex, req, &r, policy, &e);
  if (job && prep_job(req, job, &e, detail, sizeof(detail)) != 0) {
    svc_job_free(job);
    job = NULL;
  }
  if (!job) {
    svc_reject(ex, r.op_name, e.status, e.code, e.msg);
    return;
  }
  if (svc_job_submit(job) != PROVD_OK)
    svc_job_respond_unavailable(job, NULL);
}
