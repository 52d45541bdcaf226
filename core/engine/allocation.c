#include "engine/allocation.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provd/alloc.h"
#include "util/err.h"
#include "util/log.h"

/* The linked hubs as one immutable snapshot.  Registrations read the
 * current one without a lock; a change builds a new one and swaps it in.
 * Replaced snapshots are retired, not freed, until allocator_free: an
 * outcome's hub name may still point into them, and hub changes are rare
 * operator actions, so the retired list stays small. */
struct hub_set {
  struct provd_hub_info *hubs;      /* every linked hub, removed ones too */
  int *accepts;                     /* apply_allocation_policy && weight */
  int *removed;                     /* 1: kept for its devices' records */
  char **strings;                   /* owned names and host names */
  size_t n_hubs;
  struct hub_set *retired_next;
};

struct allocator {
  struct plugin_set *plugins;       /* borrowed */
  const char *default_policy;       /* config-owned, or NULL */
  _Atomic(struct hub_set *) hubs_now;
  pthread_mutex_t swap_lock;        /* writers of hubs_now and retired */
  struct hub_set *retired;
  /* Hubs whose connector reports them down (hub_health.h); allocations
   * skip them.  Lock-free while every hub is healthy. */
  atomic_int n_unhealthy;
  pthread_mutex_t health_lock;
  char unhealthy[ALLOC_MAX_HUBS][PROVD_HUB_NAME_MAX];
};

/* Copies each hub owns: name, hostname, region (or NULL). */
#define HUB_STRINGS 3

static void hub_set_free(struct hub_set *h)
{
  if (!h)
    return;
  for (size_t i = 0; i < HUB_STRINGS * h->n_hubs; i++)
    free(h->strings[i]);
  free(h->strings);
  free(h->hubs);
  free(h->accepts);
  free(h->removed);
  free(h);
}

static struct hub_set *hub_set_new(const struct alloc_hub *src, size_t n)
{
  struct hub_set *h = calloc(1, sizeof(*h));
  if (!h)
    return NULL;
  h->hubs = calloc(n + 1, sizeof(*h->hubs));
  h->accepts = calloc(n + 1, sizeof(*h->accepts));
  h->removed = calloc(n + 1, sizeof(*h->removed));
  h->strings = calloc(HUB_STRINGS * n + 1, sizeof(*h->strings));
  if (!h->hubs || !h->accepts || !h->removed || !h->strings) {
    hub_set_free(h);
    return NULL;
  }
  for (size_t i = 0; i < n; i++, h->n_hubs++) {
    char **str = &h->strings[HUB_STRINGS * i];
    str[0] = strdup(src[i].name);
    str[1] = strdup(src[i].hostname);
    str[2] = src[i].region && *src[i].region ? strdup(src[i].region) : NULL;
    if (!str[0] || !str[1] || (src[i].region && *src[i].region && !str[2])) {
      h->n_hubs++;
      hub_set_free(h);
      return NULL;
    }
    h->hubs[i].struct_size = sizeof(h->hubs[i]);
    h->hubs[i].name = str[0];
    h->hubs[i].hostname = str[1];
    h->hubs[i].region = str[2];
    h->hubs[i].weight = (uint32_t)src[i].weight;
    h->removed[i] = src[i].removed;
    h->accepts[i] = src[i].apply_allocation_policy && src[i].weight > 0 &&
                    !src[i].removed;
  }
  return h;
}

static const struct hub_set *hubs_current(const struct allocator *a)
{
  return atomic_load_explicit(&a->hubs_now, memory_order_acquire);
}

int allocator_set_hubs(struct allocator *a, const struct alloc_hub *hubs,
                       size_t n, struct provd_err *err)
{
  if (n > ALLOC_MAX_HUBS) {
    perr_set(err, "TOO_MANY_HUBS", "at most %d linked hubs", ALLOC_MAX_HUBS);
    return PROVD_E_INVAL;
  }
  struct hub_set *fresh = hub_set_new(hubs, n);
  if (!fresh) {
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  pthread_mutex_lock(&a->swap_lock);
  struct hub_set *old = atomic_exchange_explicit(&a->hubs_now, fresh,
                                                 memory_order_acq_rel);
  if (old) {
    old->retired_next = a->retired;
    a->retired = old;
  }
  pthread_mutex_unlock(&a->swap_lock);
  return PROVD_OK;
}

/* ---------- lifecycle ---------- */

static struct plugin_instance *plugin_for(const struct allocator *a,
                                          const char *policy)
{
  struct plugin_instance *p;
  for (size_t i = 0; (p = plugins_nth(a->plugins, PROVD_KIND_ALLOCATION, i));
       i++) {
    const struct provd_alloc_ops *ops = p->desc->ops;
    if (!policy || (ops->policy && strcasecmp(ops->policy, policy) == 0))
      return p; /* no policy: the first declared one */
  }
  return NULL;
}

int allocator_policy_known(const struct allocator *a, const char *policy)
{
  return policy && plugin_for(a, policy) != NULL;
}

int allocator_new(const struct provd_config *cfg, struct plugin_set *plugins,
                  struct allocator **out, struct provd_err *err)
{
  struct allocator *a = calloc(1, sizeof(*a));
  if (!a) {
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  a->plugins = plugins;
  a->default_policy = cfg->allocation_policy;
  pthread_mutex_init(&a->swap_lock, NULL);
  pthread_mutex_init(&a->health_lock, NULL);
  struct alloc_hub seed[ALLOC_MAX_HUBS];
  size_t n = cfg->n_hubs < ALLOC_MAX_HUBS ? cfg->n_hubs : ALLOC_MAX_HUBS;
  for (size_t i = 0; i < n; i++)
    seed[i] = (struct alloc_hub){
        .name = cfg->hubs[i].name, .hostname = cfg->hubs[i].hostname,
        .weight = cfg->hubs[i].weight,
        .apply_allocation_policy = cfg->hubs[i].apply_allocation_policy};
  int rc = allocator_set_hubs(a, seed, n, err);
  if (rc != PROVD_OK) {
    allocator_free(a);
    return rc;
  }
  if (a->default_policy && plugins_nth(plugins, PROVD_KIND_ALLOCATION, 0) &&
      !plugin_for(a, a->default_policy)) {
    perr_set(err, "BAD_CONFIG",
             "registration.allocation_policy: no allocation plugin "
             "implements '%s'", a->default_policy);
    allocator_free(a);
    return PROVD_E_CONFIG;
  }
  *out = a;
  return PROVD_OK;
}

void allocator_free(struct allocator *a)
{
  if (!a)
    return;
  hub_set_free(atomic_load(&a->hubs_now));
  while (a->retired) {
    struct hub_set *next = a->retired->retired_next;
    hub_set_free(a->retired);
    a->retired = next;
  }
  pthread_mutex_destroy(&a->swap_lock);
  pthread_mutex_destroy(&a->health_lock);
  free(a);
}

void alloc_outcome_clear(struct alloc_outcome *o)
{
  json_decref(o->initial_twin);
  json_decref(o->payload);
  json_decref(o->trace);
  memset(o, 0, sizeof(*o));
}

/* ---------- hubs ---------- */

static ptrdiff_t hub_index(const struct hub_set *a, const char *text)
{
  for (size_t i = 0; text && i < a->n_hubs; i++)
    if (strcasecmp(a->hubs[i].name, text) == 0 ||
        strcasecmp(a->hubs[i].hostname, text) == 0)
      return (ptrdiff_t)i;
  return -1;
}

const char *allocator_hostname(const struct allocator *alloc,
                               const char *name)
{
  const struct hub_set *a = hubs_current(alloc);
  for (size_t i = 0; name && i < a->n_hubs; i++)
    if (strcmp(a->hubs[i].name, name) == 0)
      return a->hubs[i].hostname;
  return NULL;
}

const char *allocator_hub_name(const struct allocator *alloc,
                               const char *text)
{
  const struct hub_set *a = hubs_current(alloc);
  ptrdiff_t i = hub_index(a, text);
  return i < 0 ? NULL : a->hubs[i].name;
}

/* The trace is built for `provctl explain` only (alloc_input.want_trace):
 * a registration would pay for a dozen JSON values it never reads.
 * trace NULL: nothing to record. */
static void trace_str(json_t *trace, const char *key, const char *value)
{
  if (trace)
    json_object_set_new(trace, key, json_string(value));
}

static void refuse(struct alloc_outcome *out, const char *reason,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void refuse(struct alloc_outcome *out, const char *reason,
                   const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
  va_end(ap);
  snprintf(out->reason, sizeof(out->reason), "%s", reason);
  out->hub = NULL;
  trace_str(out->trace, "refused", reason);
  trace_str(out->trace, "detail", out->detail);
}

static int unhealthy_index(const struct allocator *al, const char *name)
{
  for (int i = 0; i < atomic_load(&al->n_unhealthy); i++)
    if (strcmp(al->unhealthy[i], name) == 0)
      return i;
  return -1;
}

static int hub_unhealthy(struct allocator *al, const char *name)
{
  if (atomic_load_explicit(&al->n_unhealthy, memory_order_acquire) == 0)
    return 0;
  pthread_mutex_lock(&al->health_lock);
  int down = unhealthy_index(al, name) >= 0;
  pthread_mutex_unlock(&al->health_lock);
  return down;
}

void allocator_set_hub_health(struct allocator *al, const char *name,
                              int healthy)
{
  pthread_mutex_lock(&al->health_lock);
  int i = unhealthy_index(al, name);
  int n = atomic_load(&al->n_unhealthy);
  if (!healthy && i < 0 && n < ALLOC_MAX_HUBS) {
    snprintf(al->unhealthy[n], sizeof(al->unhealthy[n]), "%s", name);
    atomic_store(&al->n_unhealthy, n + 1);
  } else if (healthy && i >= 0) {
    memcpy(al->unhealthy[i], al->unhealthy[n - 1], sizeof(al->unhealthy[i]));
    atomic_store(&al->n_unhealthy, n - 1);
  }
  pthread_mutex_unlock(&al->health_lock);
}

/* One named hub of the enrollment onto cands; unknown or closed names go
 * into the trace (and the refusal, should nothing remain). */
static void add_named_hub(struct allocator *al, const struct hub_set *a,
                          const char *text,
                          const struct provd_hub_info **cands, size_t *n,
                          json_t *excluded)
{
  ptrdiff_t i = hub_index(a, text);
  const char *why = i < 0           ? "not a linked hub"
                    : a->removed[i] ? "removed from the linked hubs"
                    : !a->accepts[i] && a->hubs[i].weight == 0
                        ? "drained (weight 0)"
                    : !a->accepts[i] ? "apply_allocation_policy: false"
                    : hub_unhealthy(al, a->hubs[i].name)
                        ? "unhealthy (its hub connector reports it down)"
                        : NULL;
  if (why) {
    json_array_append_new(excluded,
                          json_pack("{s:s,s:s}", "hub", text, "why", why));
    return;
  }
  for (size_t k = 0; k < *n; k++)
    if (cands[k] == &a->hubs[i])
      return; /* named twice */
  if (*n < ALLOC_MAX_HUBS)
    cands[(*n)++] = &a->hubs[i];
}

/* Candidates as DPS defines them (see allocation.h). */
static size_t candidate_hubs(struct allocator *al, const struct hub_set *a,
                             const json_t *enr,
                             const struct provd_hub_info **cands,
                             json_t *excluded)
{
  const json_t *list = json_object_get(enr, "iotHubs");
  const char *single = json_string_value(json_object_get(enr,
                                                         "iotHubHostName"));
  size_t n = 0;
  if (json_is_array(list) && json_array_size(list) > 0) {
    size_t i;
    const json_t *h;
    json_array_foreach(list, i, h) {
      if (json_string_value(h))
        add_named_hub(al, a, json_string_value(h), cands, &n, excluded);
    }
  } else if (single && *single) {
    add_named_hub(al, a, single, cands, &n, excluded);
  } else {
    for (size_t i = 0; i < a->n_hubs; i++)
      if (!a->removed[i])
        add_named_hub(al, a, a->hubs[i].name, cands, &n, excluded);
  }
  return n;
}

static json_t *hub_names(const struct provd_hub_info *const *cands, size_t n)
{
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, json_string(cands[i]->name));
  return arr;
}

/* ---------- the AllocationRequest (webhook body) ---------- */

/* The record as DPS hands it out: keys stripped, attestation type only. */
static json_t *enrollment_without_keys(const json_t *enr)
{
  json_t *copy = json_deep_copy(enr);
  const char *type = json_string_value(
      json_object_get(json_object_get(enr, "attestation"), "type"));
  json_object_set_new(copy, "attestation",
                      json_pack("{s:s}", "type", type ? type : "none"));
  json_object_del(copy, "registrationState");
  return copy;
}

/* deviceRuntimeContext.<mechanism>: keys never leave; TPM sends the
 * enrollment's public keys as DPS does. */
static json_t *runtime_mechanism(const struct alloc_input *in)
{
  json_t *m = json_object();
  if (in->mechanism && strcmp(in->mechanism, "tpm") == 0) {
    const json_t *tpm =
        json_object_get(json_object_get(in->enrollment, "attestation"), "tpm");
    json_object_set(m, "endorsementKey", json_object_get(tpm,
                                                         "endorsementKey"));
    json_object_set(m, "storageRootKey", json_object_get(tpm,
                                                         "storageRootKey"));
  }
  return m;
}

char *allocation_request_json(const struct allocator *a,
                              const struct alloc_input *in,
                              const struct provd_hub_info *const *cands,
                              size_t n)
{
  json_t *ctx = json_pack("{s:s}", "registrationId", in->registration_id);
  const char *current = allocator_hostname(a, in->current_hub);
  if (current) {
    json_object_set_new(ctx, "currentIotHubHostName", json_string(current));
    if (in->current_device_id)
      json_object_set_new(ctx, "currentDeviceId",
                          json_string(in->current_device_id));
  }
  json_object_set_new(ctx, in->mechanism ? in->mechanism : "symmetricKey",
                      runtime_mechanism(in));
  if (in->payload)
    json_object_set(ctx, "payload", (json_t *)in->payload);
  json_t *linked = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(linked, json_string(cands[i]->hostname));
  json_t *body = json_object();
  json_object_set_new(body,
                      in->is_group ? "enrollmentGroup" : "individualEnrollment",
                      enrollment_without_keys(in->enrollment));
  json_object_set_new(body, "deviceRuntimeContext", ctx);
  json_object_set_new(body, "linkedHubs", linked);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  return text;
}

/* ---------- running a plugin ---------- */

/* The candidate named by a plugin (name or host name), or NULL. */
static const struct provd_hub_info *
pick_of(const struct provd_hub_info *const *cands, size_t n, const char *text)
{
  for (size_t i = 0; text && i < n; i++)
    if (strcmp(cands[i]->name, text) == 0 ||
        strcasecmp(cands[i]->hostname, text) == 0)
      return cands[i];
  return NULL;
}

static int call_plugin(struct plugin_instance *p, struct provd_call *call,
                       const struct alloc_input *in,
                       const struct provd_hub_info *const *cands, size_t n,
                       const char *request_json,
                       struct provd_alloc_result *res, struct provd_err *err)
{
  const struct provd_alloc_ops *ops = p->desc->ops;
  struct provd_alloc_request areq = {
      .struct_size = sizeof(areq),
      .registration_id = in->registration_id,
      .enrollment = cfg_from_json(in->enrollment),
      .payload = in->payload ? cfg_from_json(in->payload) : NULL,
      .current_hub = in->current_hub,
      .hubs = cands,
      .n_hubs = n,
      .is_group = in->is_group,
      .current_device_id = in->current_hub ? in->current_device_id : NULL,
      .allocation_request_json = request_json,
      .dry_run = in->dry_run,
      .client_address = in->client_ip,
  };
  plugin_op_enter(p);
  int rc = ops->allocate(p->state, call, &areq, res, err);
  plugin_op_leave(p);
  return rc;
}

/* Runs the plugin of `policy` over cands; on success sets out->hub. */
static int run_policy(struct allocator *a, struct provd_call *call,
                      const struct alloc_input *in, const char *policy,
                      const struct provd_hub_info *const *cands, size_t n,
                      struct provd_alloc_result *res, json_t *step,
                      struct alloc_outcome *out)
{
  struct plugin_instance *p = plugin_for(a, policy);
  if (!p) {
    refuse(out, "ALLOCATION_POLICY_UNAVAILABLE",
           "no allocation plugin implements policy '%s'", policy);
    return PROVD_DENIED;
  }
  const char *name = ((const struct provd_alloc_ops *)p->desc->ops)->policy;
  out->policy = name;
  trace_str(step, "policy", name ? name : p->name);
  /* Only a plugin that may call out (not NONBLOCKING) gets the webhook
   * body: the others would pay for a serialization they never read. */
  char *request_json = (p->desc->flags & PROVD_PLUGIN_NONBLOCKING)
                           ? NULL
                           : allocation_request_json(a, in, cands, n);
  struct provd_err err = {0};
  int rc = call_plugin(p, call, in, cands, n, request_json, res, &err);
  free(request_json);
  if (res->reason[0])
    trace_str(step, "said", res->reason);
  if (rc != PROVD_OK) {
    refuse(out, err.code[0] ? err.code : "NO_HUB_AVAILABLE", "%s",
           err.msg[0] ? err.msg : "the allocation plugin chose no hub");
    return PROVD_DENIED;
  }
  if (res->delegate[0]) {
    trace_str(step, "delegatedTo", res->delegate);
    trace_str(step, "why", res->why);
    return PROVD_PENDING;
  }
  const struct provd_hub_info *hub = pick_of(cands, n, res->hub);
  if (!hub) {
    refuse(out, "NO_HUB_AVAILABLE", "policy %s chose '%s', not a candidate",
           name ? name : p->name, res->hub);
    return PROVD_DENIED;
  }
  out->hub = hub->name;
  trace_str(step, "hub", hub->name);
  return PROVD_OK;
}

/* The subset of cands a delegation names (all when it names none). */
static size_t delegate_candidates(const struct provd_alloc_result *res,
                                  const struct provd_hub_info *const *cands,
                                  size_t n,
                                  const struct provd_hub_info **sub)
{
  if (res->n_delegate_hubs == 0) {
    memcpy(sub, cands, n * sizeof(*sub));
    return n;
  }
  size_t m = 0;
  for (size_t i = 0; i < res->n_delegate_hubs; i++) {
    const struct provd_hub_info *h = pick_of(cands, n, res->delegate_hubs[i]);
    if (h)
      sub[m++] = h;
  }
  return m;
}

static void take_data(struct provd_alloc_result *res,
                      struct alloc_outcome *out)
{
  if (res->initial_twin) {
    json_decref(out->initial_twin);
    out->initial_twin = res->initial_twin;
    res->initial_twin = NULL;
  }
  if (res->payload) {
    json_decref(out->payload);
    out->payload = res->payload;
    res->payload = NULL;
  }
}

static const char *policy_of(const struct allocator *a, const json_t *enr,
                             json_t *trace)
{
  const char *policy = json_string_value(json_object_get(enr,
                                                         "allocationPolicy"));
  const char *source = "enrollment";
  if (!policy) {
    policy = a->default_policy;
    source = policy ? "registration.allocation_policy" : "first plugin";
  }
  trace_str(trace, "policySource", source);
  return policy;
}

/* A new step of the trace's "steps", or NULL without a trace. */
static json_t *trace_step(json_t *steps)
{
  json_t *step = steps ? json_object() : NULL;
  if (step)
    json_array_append_new(steps, step);
  return step;
}

void allocator_run(struct allocator *a, struct provd_call *call,
                   const struct alloc_input *in, struct alloc_outcome *out)
{
  memset(out, 0, sizeof(*out));
  out->trace = in->want_trace ? json_object() : NULL;
  json_t *excluded = json_array();
  const struct provd_hub_info *cands[ALLOC_MAX_HUBS];
  size_t n = candidate_hubs(a, hubs_current(a), in->enrollment, cands,
                            excluded);
  const char *policy = policy_of(a, in->enrollment, out->trace);
  json_t *steps = out->trace ? json_array() : NULL;
  if (out->trace) {
    json_object_set_new(out->trace, "candidates", hub_names(cands, n));
    if (json_array_size(excluded))
      json_object_set(out->trace, "excluded", excluded);
    json_object_set_new(out->trace, "steps", steps);
  }
  if (n == 0) {
    const json_t *first = json_array_get(excluded, 0);
    trace_str(out->trace, "policy", policy ? policy : "(default)");
    if (first)
      refuse(out, "NO_HUB_AVAILABLE", "hub '%s': %s",
             json_string_value(json_object_get(first, "hub")),
             json_string_value(json_object_get(first, "why")));
    else
      refuse(out, "NO_HUB_AVAILABLE", "no hub is configured");
    json_decref(excluded);
    return;
  }
  json_decref(excluded);
  struct provd_alloc_result res = {0};
  int rc = run_policy(a, call, in, policy, cands, n, &res, trace_step(steps),
                      out);
  trace_str(out->trace, "policy",
            out->policy ? out->policy : policy ? policy : "?");
  take_data(&res, out);
  if (rc == PROVD_PENDING) { /* delegated: run that policy, once */
    const struct provd_hub_info *sub[ALLOC_MAX_HUBS];
    size_t m = delegate_candidates(&res, cands, n, sub);
    char delegate[sizeof(res.delegate)];
    snprintf(delegate, sizeof(delegate), "%s", res.delegate);
    alloc_result_clear(&res);
    json_t *step = trace_step(steps);
    if (m == 0)
      refuse(out, "NO_HUB_AVAILABLE",
             "delegation to %s named no candidate hub", delegate);
    else if (run_policy(a, call, in, delegate, sub, m, &res, step, out) ==
             PROVD_PENDING)
      refuse(out, "NO_HUB_AVAILABLE",
             "policy %s delegated again; only one delegation is followed",
             delegate);
    take_data(&res, out);
  }
  alloc_result_clear(&res);
  if (out->hub)
    trace_str(out->trace, "hub", out->hub);
}
