#include "engine/engine.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "engine/allocation.h"
#include "engine/group_cache.h"
#include "engine/ratelimit.h"
#include "engine/registration_secret.h"
#include "engine/opcache.h"
#include "net/wire_error.h"
#include "provd/alloc.h"
#include "provd/attest.h"
#include "tls/issuer.h"
#include "util/b64.h"
#include "util/ids.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/secret.h"
#include "util/timefmt.h"

/* Groups tried per registration; DPS allows 100 symmetric-key groups. */
#define MAX_GROUPS_TRIED 1000
#define CALL_DEADLINE_NS (10ull * 1000000000ull)
/* Recent operations kept for status polls: devices poll within seconds. */
#define OPCACHE_SLOTS 16384
/* Rate-limit slots: ~1.5 MB each table, tens of thousands of keys. */
#define RATE_SLOTS 65536
#define OPCACHE_TTL_MS 60000
/* Challenge rounds (PROVD_CHALLENGE, the TPM flow): the store forgets a
 * challenge after this, whatever the plugin's own lifetime, and keeps at
 * most this many open at once. */
#define CHALLENGE_KEEP_MS (10 * 60 * 1000)
#define CHALLENGE_MAX_OPEN 100000
/* A challenge answered twice at the same moment: DPS has challenge rounds
 * only for TPM, whose plugin names this refusal so. */
#define CHALLENGE_REPLAYED_REASON "TPM_CHALLENGE_REPLAYED"

struct engine {
  const struct provd_config *cfg;
  struct store *store;
  struct plugin_set *plugins;
  struct allocator *alloc;
  struct opcache *recent; /* answers to status polls, see opcache.h */
  struct group_cache *groups; /* enrollment groups per mechanism */
  const struct issuer_set *issuers; /* borrowed; NULL: none configured */
  /* Every attestation and allocation plugin only computes: registrations
   * read on the store writer (store_submit_read_on_writer). */
  bool reads_on_writer;
  atomic_int retry_after_s; /* `registration.retry_after`; SIGHUP sets it */
  /* `limits.register_rate_per_device|source`; NULL: no limit. */
  struct rate_table *per_device, *per_source;
};

/* What the attestation plugin said beside "yes" (host setters). */
struct accepted {
  char device_id[129];   /* "": the registration id */
  int64_t reuse_until_s; /* 0: the credential is not vouched for polls */
  char state_key[16];    /* registrationState.<state_key> = state */
  json_t *state;         /* owned, or NULL */
  uint32_t match_depth;  /* group candidates; 0: not ranked */
  char *hub_key_b64;     /* attest_set_hub_key; owned, a secret, or NULL */
};

/* One device request travelling through read -> write -> done. */
struct job {
  struct engine *e;
  struct reg_request *req;
  engine_done_fn done;
  void *ud;
  struct provd_call call;
  /* read phase results */
  struct store_rec enrollment;
  int has_enrollment;       /* the individual enrollment exists */
  uint64_t enrollment_gen;  /* store_generation before it was read; 0 */
  int is_group;
  struct store_rec record;   /* registration state to write */
  char event_type[32];
  char reason[64];
  char operation_id[128];
  struct accepted accepted; /* from the attestation plugin */
  struct alloc_outcome alloc; /* from the allocation plugin(s) */
  const char *mechanism;    /* attestation type checked (static string) */
  /* A challenge round: what the plugin answered, to store and send. */
  char *challenge_json;   /* owned */
  unsigned char *session; /* owned; may hold secrets */
  size_t session_len;
  int answers_challenge;  /* proof came from a stored challenge */
  int replayed;           /* that challenge was answered meanwhile */
  /* The registration as the read phase saw it: the write only lands on
   * that state (see put_planned). */
  int had_prev;
  char *prev_etag;        /* owned, or NULL */
  int adopted;            /* a concurrent registration's record answers */
  int64_t submitted_ns;   /* time_mono_ns() at engine_submit */
};

struct auth_outcome {
  char reason[64];
  char detail[512];
};

/* ---------- lifecycle ---------- */

static bool kind_is_nonblocking(struct plugin_set *plugins,
                                enum provd_kind kind)
{
  struct plugin_instance *p;
  for (size_t i = 0; (p = plugins_nth(plugins, kind, i)); i++)
    if (!(p->desc->flags & PROVD_PLUGIN_NONBLOCKING))
      return false;
  return true;
}

int engine_new(const struct provd_config *cfg, struct store *store,
               struct plugin_set *plugins, struct engine **out,
               struct provd_err *err)
{
  struct engine *e = calloc(1, sizeof(*e));
  if (!e) {
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  e->cfg = cfg;
  e->store = store;
  e->plugins = plugins;
  atomic_init(&e->retry_after_s, cfg->retry_after_s);
  e->reads_on_writer = kind_is_nonblocking(plugins, PROVD_KIND_ATTESTATION) &&
                       kind_is_nonblocking(plugins, PROVD_KIND_ALLOCATION);
  log_info("engine", "registrations read on the %s",
           e->reads_on_writer
               ? "store writer (every attestation and allocation plugin "
                 "is non-blocking)"
               : "store readers (a plugin may block)");
  int rc = allocator_new(cfg, plugins, &e->alloc, err);
  if (rc != PROVD_OK) {
    engine_free(e);
    return rc;
  }
  e->recent = opcache_new(OPCACHE_SLOTS, OPCACHE_TTL_MS);
  e->groups = group_cache_new();
  if (cfg->register_rate_per_device > 0)
    e->per_device = rate_table_new(RATE_SLOTS,
                                   (uint32_t)cfg->register_rate_per_device);
  if (cfg->register_rate_per_source > 0)
    e->per_source = rate_table_new(RATE_SLOTS,
                                   (uint32_t)cfg->register_rate_per_source);
  if (!e->recent || !e->groups ||
      (cfg->register_rate_per_device > 0 && !e->per_device) ||
      (cfg->register_rate_per_source > 0 && !e->per_source)) {
    engine_free(e);
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  *out = e;
  return PROVD_OK;
}

int engine_allocation_policy_known(const struct engine *e, const char *policy)
{
  return allocator_policy_known(e->alloc, policy);
}

void engine_set_retry_after(struct engine *e, int seconds)
{
  atomic_store_explicit(&e->retry_after_s, seconds, memory_order_relaxed);
}

void engine_set_issuers(struct engine *e, const struct issuer_set *borrow)
{
  e->issuers = borrow;
}

void engine_free(struct engine *e)
{
  if (!e)
    return;
  allocator_free(e->alloc);
  opcache_free(e->recent);
  group_cache_free(e->groups);
  rate_table_free(e->per_device);
  rate_table_free(e->per_source);
  free(e);
}

struct engine_known {
  uint64_t gen; /* never 0 */
  int found;
  struct store_rec enrollment; /* when found */
};

struct engine_known *engine_known_dup(const struct engine_known *k)
{
  struct engine_known *copy = k ? calloc(1, sizeof *copy) : NULL;
  if (!copy)
    return NULL;
  copy->gen = k->gen;
  copy->found = k->found;
  if (k->found && store_rec_dup(&k->enrollment, &copy->enrollment)) {
    free(copy);
    return NULL; /* the engine reads the enrollment itself */
  }
  return copy;
}

void engine_known_free(struct engine_known *take)
{
  if (!take)
    return;
  store_rec_clear(&take->enrollment);
  free(take);
}

/* What a REG_AUTHENTICATE job read, for its outcome; NULL when it cannot
 * be reused (unknown change number). */
static struct engine_known *known_of(const struct job *j)
{
  if (!j->enrollment_gen)
    return NULL;
  struct engine_known k = {.gen = j->enrollment_gen,
                           .found = j->has_enrollment,
                           .enrollment = j->enrollment};
  return engine_known_dup(&k);
}

void reg_request_free(struct reg_request *req)
{
  if (!req)
    return;
  engine_known_free(req->known);
  free(req->authorization);
  json_decref(req->body);
  free(req->peer_chain_pem);
  sk_X509_pop_free(req->peer_chain, X509_free);
  free(req);
}

static void accepted_clear(struct accepted *a);

static void job_free(struct job *j)
{
  reg_request_free(j->req);
  free(j->challenge_json);
  if (j->session)
    OPENSSL_cleanse(j->session, j->session_len);
  free(j->session);
  store_rec_clear(&j->enrollment);
  store_rec_clear(&j->record);
  free(j->prev_etag);
  accepted_clear(&j->accepted);
  alloc_outcome_clear(&j->alloc);
  free(j);
}

/* ---------- small JSON helpers ---------- */

static const char *json_str_at(const json_t *obj, const char *key)
{
  return json_string_value(json_object_get(obj, key));
}

static const char *enrollment_type(const json_t *enrollment)
{
  return json_str_at(json_object_get(enrollment, "attestation"), "type");
}

int engine_set_hubs(struct engine *e, const struct alloc_hub *hubs, size_t n,
                    struct provd_err *err)
{
  return allocator_set_hubs(e->alloc, hubs, n, err);
}

void engine_set_hub_health(struct engine *e, const char *name, int healthy)
{
  allocator_set_hub_health(e->alloc, name, healthy);
}

const char *engine_hub_name(const struct engine *e, const char *text)
{
  return allocator_hub_name(e->alloc, text);
}

static const char *hostname_of(const struct engine *e, const char *name)
{
  return allocator_hostname(e->alloc, name);
}

/* ---------- finishing ---------- */

/* Reason codes come from plugins too: keep them to A-Z 0-9 _ . - so they
 * can go into logs and metric labels verbatim. */
static void set_reason(struct job *j, const char *reason)
{
  size_t n = 0;
  for (const char *p = reason; *p && n < sizeof(j->reason) - 1; p++) {
    char c = *p;
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    j->reason[n++] = ok ? c : '_';
  }
  j->reason[n] = '\0';
}

/* A refusal in wire terms (net/wire_error.h); the transport shapes it. */
static void outcome_refused(struct reg_outcome *out, const char *reason)
{
  struct wire_error w = wire_error_of(reason);
  out->http_status = w.http_status;
  out->error_code = w.error_code;
  out->retry_after_s = wire_error_retry_after_s(w.http_status);
  snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

static void finish_error(struct job *j, const char *reason, const char *detail)
{
  set_reason(j, reason);
  reason = j->reason;
  log_info("engine", "registration refused regid=%s reason=%s trace=%s%s%s",
           j->req->registration_id, reason, j->req->trace_id,
           detail && *detail ? " detail=" : "", detail ? detail : "");
  char labels[96];
  snprintf(labels, sizeof(labels), "reason=\"%s\"",
           wire_error_public_reason(reason));
  metrics_add("provd_registration_failures_total",
              "Registration requests refused, by reason.", labels, 1);
  struct reg_outcome out = {0};
  outcome_refused(&out, reason);
  j->done(j->ud, &out);
  job_free(j);
}

/* A success answer: body_take is serialized here, once. */
static void finish(struct job *j, int http_status, json_t *body_take)
{
  char *text = json_text(body_take, 0);
  json_decref(body_take);
  if (!text) {
    finish_error(j, "INTERNAL", "out of memory");
    return;
  }
  struct reg_outcome out = {.http_status = http_status, .body_text = text};
  j->done(j->ud, &out);
  job_free(j);
}

/* REG_AUTHENTICATE accepted: 200 with an empty document, and what the
 * job read for the connection's next requests. */
static void finish_authenticated(struct job *j)
{
  struct reg_outcome out = {.http_status = 200, .body_text = strdup("{}"),
                            .known = known_of(j)};
  if (!out.body_text) {
    engine_known_free(out.known);
    finish_error(j, "INTERNAL", "out of memory");
    return;
  }
  j->done(j->ud, &out);
  job_free(j);
}

/* ---------- authentication ---------- */

static const char *detect_mechanism(const struct reg_request *req)
{
  if (req->body && json_object_get(req->body, "tpm"))
    return "tpm";
  if (!req->authorization && req->peer_chain_pem)
    return "x509";
  return "symmetricKey";
}

static struct plugin_instance *attest_plugin_for(struct engine *e,
                                                 const char *mechanism)
{
  struct plugin_instance *p;
  for (size_t i = 0; (p = plugins_nth(e->plugins, PROVD_KIND_ATTESTATION, i));
       i++) {
    const struct provd_attest_ops *ops = p->desc->ops;
    for (const char *const *m = ops->mechanisms; m && *m; m++)
      if (strcmp(*m, mechanism) == 0)
        return p;
  }
  return NULL;
}

static void accepted_take(struct accepted *out,
                          struct provd_attest_result *res)
{
  snprintf(out->device_id, sizeof(out->device_id), "%s",
           res->device_id ? res->device_id : "");
  out->reuse_until_s = res->reuse_until_s;
  out->match_depth = res->match_depth;
  out->hub_key_b64 = res->hub_key_b64;
  res->hub_key_b64 = NULL;
  if (res->state && res->state_key) {
    snprintf(out->state_key, sizeof(out->state_key), "%s", res->state_key);
    out->state = res->state;
    res->state = NULL;
  }
}

/* PROVD_CHALLENGE: the challenge document and its session, taken from
 * res. */
static void challenge_take(struct job *j, struct provd_attest_result *res)
{
  if (!res->challenge_json)
    return;
  free(j->challenge_json);
  free(j->session);
  j->challenge_json = res->challenge_json;
  j->session = res->session;
  j->session_len = res->session_len;
  res->challenge_json = NULL;
  res->session = NULL;
  res->session_len = 0;
}

static void accepted_clear(struct accepted *a)
{
  secret_free(a->hub_key_b64);
  json_decref(a->state);
  memset(a, 0, sizeof(*a));
}

/* PROVD_OK fills *out (caller clears it). */
static int call_attest(struct job *j, struct plugin_instance *p,
                       const char *mechanism, const struct store_rec *enr,
                       int is_group, struct accepted *out,
                       const struct store_challenge *ch,
                       struct auth_outcome *ao)
{
  const struct provd_attest_ops *ops = p->desc->ops;
  struct provd_attest_request areq = {
      .struct_size = sizeof(areq),
      .id_scope = j->e->cfg->id_scope,
      .registration_id = j->req->registration_id,
      .mechanism = mechanism,
      .enrollment = cfg_from_json(enr->body),
      .is_group = is_group,
      .enrollment_id = enr->id,
      .authorization = j->req->authorization,
      .body = j->req->body ? cfg_from_json(j->req->body) : NULL,
      .client_cert_chain_pem = j->req->peer_chain_pem,
      .client_cert_chain = j->req->peer_chain,
      .now_unix = time_now_ms() / 1000,
      .session = ch ? ch->session : NULL,
      .session_len = ch ? ch->session_len : 0,
      .session_answered =
          ch && ch->answered_ms > 0 && j->req->op == REG_REGISTER,
  };
  struct provd_attest_result res = {0};
  struct provd_err err = {0};
  plugin_op_enter(p);
  int rc = ops->attest(p->state, &j->call, &areq, &res, &err);
  plugin_op_leave(p);
  j->mechanism = mechanism;
  if (rc == PROVD_OK)
    accepted_take(out, &res);
  else if (rc == PROVD_CHALLENGE)
    challenge_take(j, &res);
  attest_result_clear(&res);
  if (rc == PROVD_CHALLENGE && !j->challenge_json) {
    rc = PROVD_E_INTERNAL;
    snprintf(err.code, sizeof(err.code), "ATTESTATION_ERROR");
    snprintf(err.msg, sizeof(err.msg), "challenge without a challenge");
  }
  if (rc == PROVD_OK)
    j->answers_challenge = ch != NULL;
  if (rc != PROVD_OK) {
    snprintf(ao->reason, sizeof(ao->reason), "%s",
             err.code[0] ? err.code
                         : (rc < 0 ? "ATTESTATION_ERROR" : "BAD_SIGNATURE"));
    snprintf(ao->detail, sizeof(ao->detail), "%s", err.msg);
  }
  return rc;
}

/* Tries the enrollment groups of the mechanism in id order.  A group that
 * does not know the device declines; any other refusal ends the search.
 * The first group that accepts wins, unless the plugin ranks its matches
 * by depth (X.509: the group of the first intermediate before the
 * root's, DPS's most specific match). */
static int authenticate_by_group(struct job *j, struct store_session *s,
                                 struct plugin_instance *p,
                                 const char *mechanism, struct auth_outcome *ao)
{
  const struct group_list *groups = NULL;
  struct provd_err err = {0};
  if (group_cache_get(j->e->groups, s, mechanism, MAX_GROUPS_TRIED, &groups,
                      &err) != PROVD_OK) {
    snprintf(ao->reason, sizeof(ao->reason), "STORE_UNAVAILABLE");
    snprintf(ao->detail, sizeof(ao->detail), "%s", err.msg);
    return PROVD_E_UNAVAILABLE;
  }
  size_t n = groups->n;
  int rc = PROVD_NOT_FOUND;
  snprintf(ao->reason, sizeof(ao->reason), "ENROLLMENT_NOT_FOUND");
  size_t best = n;
  for (size_t i = 0; i < n; i++) {
    struct accepted cand = {0};
    struct store_rec as_seen = groups->recs[i];
    as_seen.body = groups->seen[i];
    rc = call_attest(j, p, mechanism, &as_seen, 1, &cand, NULL, ao);
    if (rc == PROVD_DECLINED)
      continue; /* ao keeps the plugin's reason, BAD_SIGNATURE if none */
    if (rc != PROVD_OK) {
      best = n; /* a refusal (revoked, expired) outranks any acceptance */
      break;
    }
    if (best == n || (cand.match_depth > 0 &&
                      cand.match_depth < j->accepted.match_depth)) {
      accepted_clear(&j->accepted);
      j->accepted = cand;
      best = i;
    } else {
      accepted_clear(&cand);
    }
    if (j->accepted.match_depth <= 1)
      break; /* unranked, or nothing can be more specific */
  }
  if (best < n && store_rec_dup(&groups->recs[best], &j->enrollment) ==
                      PROVD_OK) {
    rc = PROVD_OK;
    j->is_group = 1;
  } else if (best < n) {
    rc = PROVD_E_NOMEM;
    snprintf(ao->reason, sizeof(ao->reason), "INTERNAL");
    snprintf(ao->detail, sizeof(ao->detail), "out of memory");
  }
  if (rc != PROVD_OK)
    accepted_clear(&j->accepted);
  group_list_release(groups);
  return rc;
}

static int plugin_has_challenge_rounds(const struct plugin_instance *p)
{
  const struct provd_attest_ops *ops = p->desc->ops;
  return PROVD_HAS(ops, struct provd_attest_ops, flags) &&
         (ops->flags & PROVD_ATTEST_CHALLENGE_ROUNDS);
}

/* The stored challenge a token may answer; ch->session stays NULL when
 * there is none (the plugin then refuses the token). */
static int load_challenge(struct job *j, struct store_session *s,
                          const struct plugin_instance *p,
                          struct store_challenge *ch, struct auth_outcome *ao)
{
  if (!j->req->authorization || !plugin_has_challenge_rounds(p))
    return PROVD_OK;
  struct provd_err err = {0};
  int rc = store_challenge_get(s, j->req->registration_id, time_now_ms(),
                               ch, &err);
  if (rc == PROVD_OK || rc == PROVD_NOT_FOUND || rc == PROVD_E_UNSUPPORTED)
    return PROVD_OK;
  snprintf(ao->reason, sizeof(ao->reason), "STORE_UNAVAILABLE");
  snprintf(ao->detail, sizeof(ao->detail), "%s", err.msg);
  return rc;
}

/* A status poll or lookup carries no attestation data of its own (the SDKs
 * send "{}"): the plugin of the individual enrollment's type checks it. */
static const char *mechanism_of_poll(const struct job *j,
                                     const char *detected, const char *type)
{
  int has_own_data = strcmp(detected, "symmetricKey") != 0;
  int registers = j->req->op == REG_REGISTER ||
                  j->req->op == REG_AUTHENTICATE;
  if (registers || has_own_data || !type ||
      !attest_plugin_for(j->e, type))
    return detected;
  return type;
}

/* The device's individual enrollment: what the request's connection
 * already read when nothing changed since (engine_known), else the
 * store's. */
static int read_enrollment(struct job *j, struct store_session *s,
                           struct provd_err *err)
{
  j->enrollment_gen = store_generation(s, PROVD_TABLE_ENROLLMENTS);
  const struct engine_known *k = j->req->known;
  int rc;
  if (k && j->enrollment_gen == k->gen) {
    rc = k->found ? store_rec_dup(&k->enrollment, &j->enrollment)
                  : PROVD_NOT_FOUND;
    metrics_add("provd_enrollment_reads_reused_total",
                "Requests that used the enrollment their connection's "
                "authentication had read, unchanged since, instead of "
                "reading it again.", NULL, 1);
  } else {
    rc = store_get(s, PROVD_TABLE_ENROLLMENTS, j->req->registration_id,
                   &j->enrollment, err);
  }
  j->has_enrollment = rc == PROVD_OK;
  return rc;
}

static int authenticate(struct job *j, struct store_session *s,
                        struct auth_outcome *ao)
{
  const char *mechanism = detect_mechanism(j->req);
  struct provd_err err = {0};
  int rc = read_enrollment(j, s, &err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND) {
    snprintf(ao->reason, sizeof(ao->reason), "STORE_UNAVAILABLE");
    snprintf(ao->detail, sizeof(ao->detail), "%s", err.msg);
    return rc;
  }
  const char *type = rc == PROVD_OK ? enrollment_type(j->enrollment.body)
                                    : NULL;
  mechanism = mechanism_of_poll(j, mechanism, type);
  struct plugin_instance *p = attest_plugin_for(j->e, mechanism);
  if (!p) {
    snprintf(ao->reason, sizeof(ao->reason), "ATTESTATION_UNAVAILABLE");
    snprintf(ao->detail, sizeof(ao->detail),
             "no attestation plugin handles %s", mechanism);
    return PROVD_DENIED;
  }
  if (rc == PROVD_NOT_FOUND)
    return authenticate_by_group(j, s, p, mechanism, ao);
  if (!type || strcmp(type, mechanism) != 0) {
    snprintf(ao->reason, sizeof(ao->reason), "ATTESTATION_MISMATCH");
    snprintf(ao->detail, sizeof(ao->detail),
             "enrollment uses %s, device presented %s",
             type ? type : "nothing", mechanism);
    return PROVD_DENIED;
  }
  struct store_challenge ch = {0};
  rc = load_challenge(j, s, p, &ch, ao);
  if (rc == PROVD_OK)
    rc = call_attest(j, p, mechanism, &j->enrollment, 0, &j->accepted,
                     ch.session ? &ch : NULL, ao);
  store_challenge_clear(&ch);
  return rc;
}

/* ---------- device-facing documents ---------- */

static void etag_uuid(const char *etag, char out[37])
{
  size_t len = etag ? strlen(etag) : 0;
  if (len == 38 && etag[0] == '"')
    snprintf(out, 37, "%.36s", etag + 1);
  else
    snprintf(out, 37, "%s", etag ? etag : "");
}

static void operation_id_for(const char *etag, char out[128])
{
  char uuid[37], prefix[64];
  etag_uuid(etag, uuid);
  ids_operation(prefix); /* "5.<16 hex>.<uuid>": keep the random head */
  snprintf(out, 128, "%.19s%s", prefix, uuid);
}

static int operation_matches(const char *operation_id, const char *etag)
{
  char uuid[37];
  etag_uuid(etag, uuid);
  size_t n = strlen(operation_id), u = strlen(uuid);
  return u > 0 && n > u && strcmp(operation_id + n - u, uuid) == 0;
}

/* The registration state as a device sees it: etag base64-encoded as DPS
 * does, no hub fields unless assigned. */
/* Takes rec->body (NULL afterwards) and reshapes it in place: every
 * caller is done with the record, and a deep copy per answer showed in
 * the writer's profile. */
static json_t *device_view_take(struct store_rec *rec)
{
  json_t *v = rec->body;
  rec->body = NULL;
  /* provd extensions of the service API's view, not the device's */
  json_object_del(v, "initialTwin");
  json_object_del(v, "assignmentHistory");
  registration_hide_secrets(v);
  const char *status = json_str_at(v, "status");
  if (!status || strcmp(status, "assigned") != 0) {
    json_object_del(v, "assignedHub");
    json_object_del(v, "deviceId");
    json_object_del(v, "substatus");
  }
  if (rec->etag) {
    char *b64 = b64_encode((const uint8_t *)rec->etag, strlen(rec->etag));
    if (b64)
      json_object_set_new(v, "etag", json_string(b64));
    free(b64);
  }
  if (rec->group_id && rec->group_id[0] && !json_object_get(v, "x509") &&
      !json_object_get(v, "tpm"))
    json_object_set_new(v, "symmetricKey",
                        json_pack("{s:s}", "enrollmentGroupId", rec->group_id));
  return v;
}

static json_t *operation_view_take(const char *operation_id,
                                   struct store_rec *rec)
{
  const char *status = json_str_at(rec->body, "status");
  json_t *wrapper = json_pack("{s:s,s:s}", "operationId", operation_id,
                              "status", status ? status : "failed");
  json_object_set_new(wrapper, "registrationState", device_view_take(rec));
  return wrapper;
}

/* ---------- assignment ---------- */

static int keeps_current_hub(const json_t *enr, const struct store_rec *prev)
{
  const json_t *policy = json_object_get(enr, "reprovisionPolicy");
  const json_t *update = json_object_get(policy, "updateHubAssignment");
  return prev && prev->hub && json_is_false(update);
}

/* The hub for this registration (a configured hub name) or NULL with
 * j->reason set; j->alloc keeps the trace, webhook twin and payload. */
static const char *allocate(struct job *j, const struct store_rec *prev)
{
  struct engine *e = j->e;
  const json_t *enr = j->enrollment.body;
  if (keeps_current_hub(enr, prev) && hostname_of(e, prev->hub)) {
    if (j->req->op == REG_EXPLAIN)
      j->alloc.trace = json_pack(
          "{s:s,s:s}", "policy",
          "reprovisionPolicy.updateHubAssignment: false", "hub", prev->hub);
    return prev->hub;
  }
  const json_t *payload = j->req->body ? json_object_get(j->req->body,
                                                         "payload")
                                       : NULL;
  struct alloc_input in = {
      .registration_id = j->req->registration_id,
      .enrollment = enr,
      .is_group = j->is_group,
      .mechanism = detect_mechanism(j->req),
      .payload = payload,
      .current_hub = prev ? prev->hub : NULL,
      .current_device_id = prev ? json_str_at(prev->body, "deviceId") : NULL,
      .dry_run = j->req->op == REG_EXPLAIN && !j->req->call_webhook,
      .want_trace = j->req->op == REG_EXPLAIN,
      .client_ip = j->req->client_ip[0] ? j->req->client_ip : NULL,
  };
  allocator_run(e->alloc, &j->call, &in, &j->alloc);
  if (!j->alloc.hub) {
    set_reason(j, j->alloc.reason);
    log_info("engine", "no hub regid=%s reason=%s detail=%s trace=%s",
             j->req->registration_id, j->reason, j->alloc.detail,
             j->req->trace_id);
  }
  return j->alloc.hub;
}

/* Was the device on `hub` before its current one (history, newest last)? */
static int was_assigned_to(const json_t *history, const char *hub)
{
  size_t i;
  const json_t *h;
  json_array_foreach(history, i, h) {
    const char *name = json_str_at(h, "hub");
    if (name && strcmp(name, hub) == 0)
      return 1;
  }
  return 0;
}

/* DPS substatus: initialAssignment unless the hub changed; a move back to
 * a hub the device had before is reprovisionedToInitialAssignment. */
static const char *substatus_for(const json_t *enr,
                                 const struct store_rec *prev,
                                 const char *hub)
{
  if (!prev || !prev->hub || strcmp(prev->hub, hub) == 0)
    return "initialAssignment";
  if (was_assigned_to(json_object_get(prev->body, "assignmentHistory"), hub))
    return "reprovisionedToInitialAssignment";
  const json_t *policy = json_object_get(enr, "reprovisionPolicy");
  if (json_is_false(json_object_get(policy, "migrateDeviceData")))
    return "deviceDataReset";
  return "deviceDataMigrated";
}

#define HISTORY_MAX 16

/* provd extension: where the device lived before, newest last, at most
 * HISTORY_MAX entries; an entry is added each time the hub changes. */
static void add_history(json_t *body, const struct store_rec *prev,
                        const char *hub, const char *substatus,
                        const char *policy, const char *now_s)
{
  const json_t *old = prev ? json_object_get(prev->body, "assignmentHistory")
                           : NULL;
  json_t *history = json_is_array(old) ? json_deep_copy(old) : json_array();
  if (prev && prev->hub && hub && strcmp(prev->hub, hub) != 0) {
    json_t *entry = json_pack(
        "{s:s,s:O?,s:O?,s:O?,s:s,s:s,s:s?}", "hub", prev->hub, "assignedHub",
        json_object_get(prev->body, "assignedHub"), "deviceId",
        json_object_get(prev->body, "deviceId"), "since",
        json_object_get(prev->body, "lastUpdatedDateTimeUtc"), "until", now_s,
        "reason", substatus, "policy", policy);
    json_array_append_new(history, entry);
    while (json_array_size(history) > HISTORY_MAX)
      json_array_remove(history, 0);
  }
  if (json_array_size(history))
    json_object_set_new(body, "assignmentHistory", history);
  else
    json_decref(history);
}

/* The initial twin is applied on initial assignment and on reset, never on
 * migration (the device's twin moves with it): the webhook's, else the
 * enrollment's.  Otherwise the record keeps the one applied before. */
static void add_initial_twin(struct job *j, json_t *body,
                             const struct store_rec *prev,
                             const char *substatus)
{
  const json_t *twin = NULL;
  int applies = strcmp(substatus, "deviceDataMigrated") != 0 &&
                (strcmp(substatus, "initialAssignment") != 0 || !prev ||
                 !prev->hub);
  if (applies && j->alloc.initial_twin)
    twin = j->alloc.initial_twin;
  else if (applies)
    twin = json_object_get(j->enrollment.body, "initialTwin");
  else if (prev)
    twin = json_object_get(prev->body, "initialTwin");
  if (json_is_object(twin))
    json_object_set(body, "initialTwin", (json_t *)twin);
}

static const char *device_id_for(struct job *j)
{
  if (j->accepted.device_id[0])
    return j->accepted.device_id;
  const char *configured = json_str_at(j->enrollment.body, "deviceId");
  if (!j->is_group && configured && *configured)
    return configured;
  return j->req->registration_id;
}

/* A device that already lived on another hub was moved: back ends that
 * track where devices are hear it as its own event. */
static const char *assigned_event_type(const struct store_rec *prev,
                                       const char *hub)
{
  if (prev && prev->hub && strcasecmp(prev->hub, hub) != 0)
    return "device.reprovisioned";
  return "device.assigned";
}

/* registrationState.x509 (or .tpm ...) as the attestation plugin wrote
 * it: stored with the record, so status lookups and the service API's
 * registration views show it too. */
static void add_attestation_state(struct job *j, json_t *body)
{
  if (j->accepted.state)
    json_object_set(body, j->accepted.state_key, j->accepted.state);
}

/* 400208 ("no IoT hub could be selected", the code the C SDK knows) or
 * 400207 (custom allocation failed) from the one reason table. */
static void record_allocation_failure(struct job *j, json_t *body)
{
  struct wire_error w = wire_error_of(j->reason);
  int webhook = strcmp(j->reason, "ALLOCATION_WEBHOOK_FAILED") == 0;
  json_object_set_new(body, "status", json_string("failed"));
  json_object_set_new(body, "errorCode",
                      json_integer(w.error_code ? w.error_code : 400208));
  json_object_set_new(body, "errorMessage",
                      json_string(webhook && j->alloc.detail[0]
                                      ? j->alloc.detail
                                      : w.message));
  snprintf(j->event_type, sizeof(j->event_type), "registration.failed");
}

/* Fills j->record with the new registration state.  A failed or disabled
 * attempt keeps the hub and device id the device already has: nothing
 * forgets where an identity lives. */
static void plan_record(struct job *j, const struct store_rec *prev)
{
  int64_t now = time_now_ms();
  char now_s[32], created_s[32], etag[40];
  time_iso8601(now, now_s);
  ids_etag(etag);
  const json_t *enr = j->enrollment.body;
  const char *created = prev ? json_str_at(prev->body, "createdDateTimeUtc")
                             : NULL;
  if (!created) {
    snprintf(created_s, sizeof(created_s), "%s", now_s);
    created = created_s;
  }
  json_t *body = json_pack("{s:s,s:s,s:s}", "registrationId",
                           j->req->registration_id, "createdDateTimeUtc",
                           created, "lastUpdatedDateTimeUtc", now_s);
  const char *hub = NULL;
  const char *status = json_str_at(enr, "provisioningStatus");
  if (status && strcmp(status, "disabled") == 0) {
    snprintf(j->reason, sizeof(j->reason), "ENROLLMENT_DISABLED");
    json_object_set_new(body, "status", json_string("disabled"));
    snprintf(j->event_type, sizeof(j->event_type), "registration.failed");
  } else if ((hub = allocate(j, prev)) != NULL) {
    const char *substatus = substatus_for(enr, prev, hub);
    json_object_set_new(body, "assignedHub",
                        json_string(hostname_of(j->e, hub)));
    json_object_set_new(body, "deviceId", json_string(device_id_for(j)));
    json_object_set_new(body, "status", json_string("assigned"));
    json_object_set_new(body, "substatus", json_string(substatus));
    if (j->alloc.payload)
      json_object_set(body, "payload", j->alloc.payload);
    registration_set_hub_key(body, j->accepted.hub_key_b64);
    add_initial_twin(j, body, prev, substatus);
    add_history(body, prev, hub, substatus, j->alloc.policy, now_s);
    snprintf(j->event_type, sizeof(j->event_type), "%s",
             assigned_event_type(prev, hub));
  } else {
    record_allocation_failure(j, body);
  }
  if (!hub && prev && prev->hub) { /* keep the existing identity's home */
    const char *prev_host = json_str_at(prev->body, "assignedHub");
    const char *prev_dev = json_str_at(prev->body, "deviceId");
    if (prev_host && prev_dev) {
      json_object_set_new(body, "assignedHub", json_string(prev_host));
      json_object_set_new(body, "deviceId", json_string(prev_dev));
    }
    json_object_set(body, "initialTwin",
                    json_object_get(prev->body, "initialTwin"));
    json_object_set(body, "assignmentHistory",
                    json_object_get(prev->body, "assignmentHistory"));
    hub = prev->hub;
  }
  add_attestation_state(j, body);
  json_object_set_new(body, "etag", json_string(etag));
  j->record.id = strdup(j->req->registration_id);
  j->record.etag = strdup(etag);
  j->record.body = body;
  j->record.created_ms = prev ? prev->created_ms : now;
  j->record.updated_ms = now;
  j->record.group_id = j->is_group ? strdup(j->enrollment.id) : NULL;
  j->record.hub = hub ? strdup(hub) : NULL;
  operation_id_for(etag, j->operation_id);
}

/* ---------- certificate issuance ---------- */

/* DPS certificate issuance: the register body's `csr`, checked after the
 * device proved itself, is signed by the issuer the enrollment names in
 * credentialPolicyName once the device is assigned; the chain goes into
 * the registration state the device polls.  A refused CSR finishes the
 * job (nothing is written) and returns non-zero. */
static int attach_issued_certificate(struct job *j)
{
  const json_t *csr = json_object_get(j->req->body, "csr");
  if (!csr)
    return PROVD_OK;
  const char *policy = json_str_at(j->enrollment.body, "credentialPolicyName");
  const struct issuer *iss = issuers_find(j->e->issuers, policy);
  if (!iss) {
    finish_error(j, "CSR_NOT_CONFIGURED",
                 policy ? "credentialPolicyName names no certificate issuer "
                          "of provd.yaml"
                        : "the enrollment has no credentialPolicyName");
    return PROVD_DENIED;
  }
  X509_REQ *req = NULL;
  struct provd_err err = {0};
  int rc = csr_check(json_string_value(csr), j->req->registration_id,
                     issuer_key_rule(iss), &req, &err);
  if (rc == PROVD_OK &&
      strcmp(json_str_at(j->record.body, "status"), "assigned") == 0) {
    json_t *chain = NULL;
    rc = issuer_sign(iss, req, j->req->registration_id, &chain, &err);
    if (rc == PROVD_OK) {
      json_object_set_new(j->record.body, "issuedCertificateChain", chain);
      metrics_add("provd_certificates_issued_total",
                  "Device certificates signed from a CSR.", NULL, 1);
    }
  }
  X509_REQ_free(req);
  if (rc != PROVD_OK)
    finish_error(j, err.code, err.msg);
  return rc;
}

/* Checking a CSR and signing take milliseconds of CPU: such a
 * registration reads (and signs) on a store reader, never on the writer
 * every other registration's record waits for. */
static int asks_for_certificate(const struct reg_request *req)
{
  return req->body && json_object_get(req->body, "csr") != NULL;
}

/* ---------- phases ---------- */

/* In the registration's transaction: the challenge this registration
 * answered is used up.  Losing the race to an identical answer is a
 * replay. */
static int answer_challenge(struct job *j, struct store_session *s,
                            struct provd_err *err)
{
  if (!j->answers_challenge)
    return PROVD_OK;
  int rc = store_challenge_answer(s, j->req->registration_id, time_now_ms(),
                                  err);
  if (rc == PROVD_EXISTS)
    j->replayed = 1;
  return rc == PROVD_NOT_FOUND ? PROVD_OK : rc; /* expired meanwhile */
}

/* ---- a challenge round: store it, then send it ---- */

static int write_challenge(struct store_session *s, void *ud,
                           struct provd_err *err)
{
  struct job *j = ud;
  int64_t now = time_now_ms();
  return store_challenge_put(s, j->req->registration_id, j->session,
                             j->session_len, now, now + CHALLENGE_KEEP_MS,
                             CHALLENGE_MAX_OPEN, err);
}

static void challenge_written(void *ud, int status,
                              const struct provd_err *err)
{
  struct job *j = ud;
  if (status != PROVD_OK) {
    finish_error(j, status == PROVD_E_UNAVAILABLE ? "THROTTLED"
                                                  : "STORE_UNAVAILABLE",
                 err ? err->msg : NULL);
    return;
  }
  log_info("engine", "challenge issued regid=%s mechanism=%s trace=%s",
           j->req->registration_id, j->mechanism ? j->mechanism : "?",
           j->req->trace_id);
  metrics_add("provd_attestation_challenges_total",
              "Attestation challenge rounds started.", NULL, 1);
  /* DPS answers a challenge with 401 and the challenge as the body. */
  struct reg_outcome out = {.http_status = 401,
                            .body_text = j->challenge_json};
  j->challenge_json = NULL;
  j->done(j->ud, &out);
  job_free(j);
}

static void issue_challenge(struct job *j)
{
  if (j->req->op != REG_REGISTER) {
    finish_error(j, "MISSING_TOKEN", "a challenge answers only a register");
    return;
  }
  if (store_submit_write(j->e->store, write_challenge, challenge_written,
                         j) != PROVD_OK)
    finish_error(j, "THROTTLED", "store write queue full");
}

/* The registration changed between the read and this write: another
 * request of the same device (on this instance or another sharing the
 * store) registered it meanwhile.  Its record answers this request too,
 * so the device ends up with one registration and one hub. */
static int adopt_concurrent(struct job *j, struct store_session *s,
                            struct provd_err *err)
{
  struct store_rec cur = {0};
  int rc = store_get(s, PROVD_TABLE_REGISTRATIONS, j->record.id, &cur, err);
  if (rc != PROVD_OK)
    return rc == PROVD_NOT_FOUND ? PROVD_E_UNAVAILABLE : rc;
  log_info("engine", "concurrent registration regid=%s: answering with the "
           "record written meanwhile trace=%s", j->record.id,
           j->req->trace_id);
  store_rec_clear(&j->record);
  j->record = cur;
  j->adopted = 1;
  operation_id_for(j->record.etag, j->operation_id);
  return PROVD_OK;
}

/* Writes the planned record only over the state the read phase saw. */
static int put_planned(struct job *j, struct store_session *s,
                       struct provd_err *err)
{
  const char *if_match = j->had_prev ? (j->prev_etag ? j->prev_etag : "*")
                                     : NULL;
  int rc = store_put(s, PROVD_TABLE_REGISTRATIONS, &j->record, if_match,
                     !j->had_prev, err);
  if (rc == PROVD_EXISTS || rc == PROVD_PRECONDITION_FAILED) {
    perr_clear(err);
    return adopt_concurrent(j, s, err);
  }
  if (rc == PROVD_NOT_FOUND) /* deleted meanwhile: register afresh */
    rc = store_put(s, PROVD_TABLE_REGISTRATIONS, &j->record, NULL, 0, err);
  return rc;
}

static int write_record(struct store_session *s, void *ud,
                        struct provd_err *err)
{
  struct job *j = ud;
  int rc = answer_challenge(j, s, err);
  if (rc == PROVD_OK)
    rc = put_planned(j, s, err);
  if (rc != PROVD_OK || j->adopted)
    return rc;
  json_t *ev = json_pack(
      "{s:s,s:O?,s:O?,s:O,s:s?,s:s?}", "registrationId", j->record.id,
      "deviceId", json_object_get(j->record.body, "deviceId"), "assignedHub",
      json_object_get(j->record.body, "assignedHub"), "status",
      json_object_get(j->record.body, "status"), "hub", j->record.hub,
      "reason", j->reason[0] ? j->reason : NULL);
  if (j->is_group)
    json_object_set_new(ev, "enrollmentGroupId", json_string(j->enrollment.id));
  rc = store_event(s, j->event_type, j->record.id, ev, NULL, err);
  json_decref(ev);
  return rc;
}

/* What the device presented as proof, whatever the mechanism: the bytes
 * the poll cache is keyed by (attest_set_reuse_until in provd/host.h). */
static const char *presented_credential(const struct reg_request *req)
{
  return req->authorization ? req->authorization : req->peer_chain_pem;
}

/* Keeps the poll's answer when the attestation plugin vouched that the
 * credential of this request keeps proving the device for a while. */
static void remember_operation(struct job *j)
{
  const char *credential = presented_credential(j->req);
  if (j->accepted.reuse_until_s <= 0 || !credential)
    return;
  json_t *answer = operation_view_take(j->operation_id, &j->record);
  char *text = json_text(answer, 0);
  json_decref(answer);
  if (text)
    opcache_put(j->e->recent, j->operation_id, j->record.id, credential,
                j->accepted.reuse_until_s, text, time_now_ms());
  free(text);
}

/* A poll answered from memory: same operation, registration id and
 * credential bytes as the register call that created it. */
static int answer_poll_from_memory(struct engine *e, struct reg_request *req,
                                   engine_done_fn done, void *ud)
{
  char *text = opcache_get(e->recent, req->operation_id,
                           req->registration_id, presented_credential(req),
                           time_now_ms());
  if (!text)
    return 0;
  metrics_add("provd_operation_polls_from_memory_total",
              "Status polls answered from the recent-operations cache.",
              NULL, 1);
  struct reg_outcome out = {.http_status = 200, .body_text = text};
  reg_request_free(req);
  done(ud, &out);
  return 1;
}

static void record_written(void *ud, int status, const struct provd_err *err)
{
  struct job *j = ud;
  if (status != PROVD_OK) {
    finish_error(j, j->replayed ? CHALLENGE_REPLAYED_REASON
                                : "STORE_UNAVAILABLE",
                 err ? err->msg : NULL);
    return;
  }
  const char *st = json_str_at(j->record.body, "status");
  if (strcmp(st, "assigned") == 0) {
    log_info("engine", "assigned regid=%s device=%s hub=%s%s%s trace=%s",
             j->record.id, json_str_at(j->record.body, "deviceId"),
             j->record.hub, j->is_group ? " group=" : "",
             j->is_group ? j->enrollment.id : "", j->req->trace_id);
    metrics_add("provd_registrations_total",
                "Registrations recorded, by outcome.", "status=\"assigned\"",
                1);
  } else {
    log_info("engine", "registration %s regid=%s reason=%s trace=%s", st,
             j->record.id, j->reason, j->req->trace_id);
    char labels[64];
    snprintf(labels, sizeof(labels), "status=\"%s\"", st);
    metrics_add("provd_registrations_total",
                "Registrations recorded, by outcome.", labels, 1);
  }
  remember_operation(j);
  /* Recorded: the device's first poll finds the final state.  The
   * operation id is ours (hex, dots, dashes): no escaping needed. */
  char *text = NULL;
  if (asprintf(&text, "{\"operationId\":\"%s\",\"status\":\"assigning\"}",
               j->operation_id) < 0) {
    finish_error(j, "INTERNAL", "out of memory");
    return;
  }
  struct reg_outcome out = {.http_status = 202, .body_text = text,
                            .retry_after_s = atomic_load_explicit(
                                &j->e->retry_after_s, memory_order_relaxed)};
  j->done(j->ud, &out);
  job_free(j);
}

static void answer_from_record(struct job *j, struct store_session *s)
{
  struct store_rec rec = {0};
  struct provd_err err = {0};
  int rc = store_get(s, PROVD_TABLE_REGISTRATIONS, j->req->registration_id,
                     &rec, &err);
  if (rc == PROVD_NOT_FOUND) {
    finish_error(j, j->req->op == REG_OPERATION_STATUS
                        ? "OPERATION_NOT_FOUND"
                        : "REGISTRATION_NOT_FOUND", NULL);
    return;
  }
  if (rc != PROVD_OK) {
    finish_error(j, "STORE_UNAVAILABLE", err.msg);
    return;
  }
  json_t *body;
  if (j->req->op == REG_OPERATION_STATUS) {
    if (!operation_matches(j->req->operation_id, rec.etag)) {
      store_rec_clear(&rec);
      finish_error(j, "OPERATION_NOT_FOUND", NULL);
      return;
    }
    body = operation_view_take(j->req->operation_id, &rec);
  } else {
    body = device_view_take(&rec);
    json_object_del(body, "issuedCertificateChain"); /* DPS: never here */
  }
  store_rec_clear(&rec);
  finish(j, 200, body);
}

/* The operator sees every reason: the caller is authenticated. */
static void finish_explain(struct job *j, const char *outcome,
                           const struct auth_outcome *ao)
{
  json_t *body = json_pack("{s:s,s:s}", "registrationId",
                           j->req->registration_id, "outcome", outcome);
  const char *reason = ao && ao->reason[0] ? ao->reason : j->reason;
  if (reason[0])
    json_object_set_new(body, "reason", json_string(reason));
  if (ao && ao->detail[0])
    json_object_set_new(body, "detail", json_string(ao->detail));
  if (j->enrollment.id)
    json_object_set_new(body, "enrollment",
                        json_pack("{s:s,s:s}", "kind",
                                  j->is_group ? "group" : "individual", "id",
                                  j->enrollment.id));
  const char *proof = !j->req->authorization ? "not checked"
                      : strcmp(outcome, "refused") == 0 ? "failed"
                                                        : "verified";
  json_object_set_new(body, "attestation", json_string(proof));
  if (j->record.body) {
    const json_t *rb = j->record.body;
    if (j->record.hub && strcmp(outcome, "assigned") == 0)
      json_object_set_new(body, "hub", json_string(j->record.hub));
    json_object_set(body, "assignedHub", json_object_get(rb, "assignedHub"));
    json_object_set(body, "deviceId", json_object_get(rb, "deviceId"));
    json_object_set(body, "substatus", json_object_get(rb, "substatus"));
    json_object_set(body, "payload", json_object_get(rb, "payload"));
    json_object_set(body, "initialTwin", json_object_get(rb, "initialTwin"));
  }
  if (j->alloc.trace)
    json_object_set(body, "allocation", j->alloc.trace);
  if (j->alloc.detail[0] && !(ao && ao->detail[0]))
    json_object_set_new(body, "detail", json_string(j->alloc.detail));
  finish(j, 200, body);
}

static void explain_phase(struct job *j, struct store_session *s)
{
  struct auth_outcome ao = {{0}, {0}};
  struct provd_err err = {0};
  int rc;
  if (j->req->authorization) {
    rc = authenticate(j, s, &ao);
  } else {
    rc = store_get(s, PROVD_TABLE_ENROLLMENTS, j->req->registration_id,
                   &j->enrollment, &err);
    if (rc == PROVD_NOT_FOUND) {
      snprintf(ao.reason, sizeof(ao.reason), "ENROLLMENT_NOT_FOUND");
      snprintf(ao.detail, sizeof(ao.detail),
               "no individual enrollment; a group member can be explained "
               "with the device's token");
    } else if (rc != PROVD_OK) {
      snprintf(ao.reason, sizeof(ao.reason), "STORE_UNAVAILABLE");
      snprintf(ao.detail, sizeof(ao.detail), "%s", err.msg);
    }
  }
  if (rc != PROVD_OK) {
    finish_explain(j, rc == PROVD_CHALLENGE ? "challenge" : "refused", &ao);
    return;
  }
  struct store_rec prev = {0};
  rc = store_get(s, PROVD_TABLE_REGISTRATIONS, j->req->registration_id, &prev,
                 &err);
  plan_record(j, rc == PROVD_OK ? &prev : NULL);
  store_rec_clear(&prev);
  finish_explain(j, json_str_at(j->record.body, "status"), NULL);
}

/* limits.first_boot_max_wait: under a boot storm the devices the store
 * already knows (re-registrations after an outage) go first; a first
 * boot that waited too long for the store is told to come back later,
 * before it costs a write.  Finishes the job and returns 1 if deferred. */
static int defer_first_boot(struct job *j)
{
  int64_t max_ms = j->e->cfg->first_boot_max_wait_ms;
  int64_t waited_ms = (time_mono_ns() - j->submitted_ns) / 1000000;
  if (max_ms <= 0 || waited_ms <= max_ms)
    return 0;
  metrics_add("provd_first_boots_deferred_total",
              "First-boot registrations deferred (429) because the store "
              "was behind (limits.first_boot_max_wait)", NULL, 1);
  char why[160];
  snprintf(why, sizeof(why),
           "first boot deferred: the store is %lld ms behind "
           "(limits.first_boot_max_wait)", (long long)waited_ms);
  finish_error(j, "THROTTLED", why);
  return 1;
}

static void read_phase(struct store_session *s, void *ud)
{
  struct job *j = ud;
  if (j->req->op == REG_EXPLAIN) {
    explain_phase(j, s);
    return;
  }
  struct auth_outcome ao = {{0}, {0}};
  int rc = authenticate(j, s, &ao);
  if (rc == PROVD_CHALLENGE && j->req->op == REG_AUTHENTICATE) {
    finish_error(j, "ATTESTATION_MISMATCH",
                 "the enrollment needs a challenge round");
    return;
  }
  if (rc == PROVD_CHALLENGE) {
    issue_challenge(j);
    return;
  }
  if (rc != PROVD_OK) {
    finish_error(j, ao.reason, ao.detail);
    return;
  }
  if (j->req->op == REG_AUTHENTICATE) {
    finish_authenticated(j);
    return;
  }
  if (j->req->op != REG_REGISTER) {
    answer_from_record(j, s);
    return;
  }
  struct store_rec prev = {0};
  struct provd_err err = {0};
  rc = store_get(s, PROVD_TABLE_REGISTRATIONS, j->req->registration_id, &prev,
                 &err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND) {
    finish_error(j, "STORE_UNAVAILABLE", err.msg);
    return;
  }
  j->had_prev = rc == PROVD_OK;
  if (!j->had_prev && defer_first_boot(j))
    return;
  j->prev_etag = j->had_prev && prev.etag ? strdup(prev.etag) : NULL;
  plan_record(j, rc == PROVD_OK ? &prev : NULL);
  store_rec_clear(&prev);
  if (attach_issued_certificate(j) != PROVD_OK)
    return;
  if (store_submit_write(j->e->store, write_record, record_written, j) !=
      PROVD_OK)
    finish_error(j, "THROTTLED", "store write queue full");
}

/* Which configured rate a register call exceeds, or NULL.  Polls and
 * lookups are not counted: the SDKs poll as told. */
static const char *rate_limited(struct engine *e,
                                const struct reg_request *req)
{
  if (req->op != REG_REGISTER)
    return NULL;
  int64_t now_s = time_now_ms() / 1000;
  if (e->per_device &&
      !rate_table_admit(e->per_device, req->registration_id, now_s))
    return "limits.register_rate_per_device reached for this registration "
           "id";
  if (e->per_source && req->client_ip[0] &&
      !rate_table_admit(e->per_source, req->client_ip, now_s))
    return "limits.register_rate_per_source reached for this address";
  return NULL;
}

void engine_submit(struct engine *e, struct reg_request *req,
                   engine_done_fn done, void *ud)
{
  if (req->op == REG_OPERATION_STATUS &&
      answer_poll_from_memory(e, req, done, ud))
    return;
  struct job *j = calloc(1, sizeof(*j));
  if (!j) {
    struct reg_outcome out = {0};
    outcome_refused(&out, "INTERNAL");
    reg_request_free(req);
    done(ud, &out);
    return;
  }
  j->e = e;
  j->req = req;
  j->done = done;
  j->ud = ud;
  snprintf(j->call.trace_id, sizeof(j->call.trace_id), "%s", req->trace_id);
  j->submitted_ns = time_mono_ns();
  j->call.deadline_ns = j->submitted_ns + CALL_DEADLINE_NS;
  const char *limited = rate_limited(e, req);
  if (limited) {
    finish_error(j, "THROTTLED", limited);
    return;
  }
  /* A registration's read ends in a write, and an MQTT CONNECT's check
   * is followed by the register's: let the writer do them when the
   * plugins allow, else when it is idle.  Its page cache stays warm; a
   * reader's is reset by every commit. */
  int rc;
  if ((req->op != REG_REGISTER && req->op != REG_AUTHENTICATE) ||
      asks_for_certificate(req))
    rc = store_submit_read(e->store, read_phase, j);
  else if (e->reads_on_writer)
    rc = store_submit_read_on_writer(e->store, read_phase, j);
  else
    rc = store_submit_read_for_write(e->store, read_phase, j);
  if (rc != PROVD_OK)
    finish_error(j, "THROTTLED", "store read queue full");
}
