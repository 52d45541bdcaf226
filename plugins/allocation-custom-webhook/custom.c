/* custom allocation: DPS's custom allocation webhook.  POSTs the
 * AllocationRequest the host built (allocation_request_json) to the
 * enrollment's customAllocationDefinition.webhookUrl and takes the hub,
 * initialTwin and payload of its AllocationResponse.  Beyond DPS: a time
 * budget, retries of refused connections within it, a fallback policy and
 * a circuit breaker.  See docs/plugins/custom-webhook.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "breaker.h"
#include "provd/alloc.h"
#include "provd/host.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define CUSTOM_MAX_NAME 64
#define CUSTOM_MAX_PATH 4096
#define CUSTOM_RETRY_PAUSE_MS 100
#define NS_PER_MS 1000000ull

struct custom {
  const struct provd_host_api *host; /* borrowed until destroy */
  struct provd_instance *inst;
  int64_t budget_ms;
  char fallback[CUSTOM_MAX_NAME]; /* "fail" or a policy name */
  char ca_file[CUSTOM_MAX_PATH];  /* "": the system's CAs */
  struct breaker breaker;
  int breaker_ready;
};

/* Why the webhook gave no usable answer. */
struct failure {
  int status;      /* the webhook's HTTP status; 0 when none arrived */
  char why[200];
};

/* ---- lifecycle ---- */

static int custom_create(const struct provd_host_api *host,
                         struct provd_instance *inst, void **state,
                         struct provd_err *err)
{
  struct custom *c = calloc(1, sizeof(*c));
  if (!c) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  c->host = host;
  c->inst = inst;
  *state = c;
  return PROVD_OK;
}

static int copy_opt(struct custom *c, const struct provd_cfg *opts,
                    const char *key, char *dst, size_t cap,
                    struct provd_err *err)
{
  const char *v = NULL;
  if (c->host->cfg_str(opts, key, &v) != PROVD_OK || !v)
    return PROVD_OK;
  if (strlen(v) >= cap) {
    c->host->err_set(err, "BAD_OPTION", "%s: longer than %zu bytes", key,
                     cap - 1);
    return PROVD_E_CONFIG;
  }
  memcpy(dst, v, strlen(v) + 1);
  return PROVD_OK;
}

static int custom_configure(void *state, const struct provd_cfg *opts,
                            struct provd_err *err)
{
  struct custom *c = state;
  const struct provd_host_api *h = c->host;
  int64_t failures = 5, cooldown_ms = 30000;
  c->budget_ms = 5000;
  snprintf(c->fallback, sizeof(c->fallback), "fail");
  if (opts) {
    h->cfg_int(opts, "timeout", &c->budget_ms);
    h->cfg_int(opts, "breaker_failures", &failures);
    h->cfg_int(opts, "breaker_cooldown", &cooldown_ms);
    if (copy_opt(c, opts, "fallback", c->fallback, sizeof(c->fallback),
                 err) ||
        copy_opt(c, opts, "ca_file", c->ca_file, sizeof(c->ca_file), err))
      return PROVD_E_CONFIG;
  }
  if (c->budget_ms < 1 || c->budget_ms > 60000 || failures < 0 ||
      failures > 1000 || cooldown_ms < 0 || !c->fallback[0]) {
    h->err_set(err, "BAD_OPTION", "timeout must be 1ms..60s, "
               "breaker_failures 0..1000, breaker_cooldown >= 0, fallback "
               "not empty");
    return PROVD_E_CONFIG;
  }
  if (c->breaker_ready)
    breaker_destroy(&c->breaker);
  breaker_init(&c->breaker, (uint32_t)failures,
               (uint64_t)cooldown_ms * NS_PER_MS);
  c->breaker_ready = 1;
  return PROVD_OK;
}

static void custom_destroy(void *state)
{
  struct custom *c = state;
  if (c->breaker_ready)
    breaker_destroy(&c->breaker);
  free(c);
}

/* ---- the call ---- */

/* https anywhere; plain http only to this machine. */
static int url_allowed(const char *url)
{
  static const char *const loopback[] = {
      "http://127.", "http://localhost:", "http://localhost/",
      "http://[::1]", NULL};
  if (strncasecmp(url, "https://", 8) == 0)
    return 1;
  for (const char *const *p = loopback; *p; p++)
    if (strncasecmp(url, *p, strlen(*p)) == 0)
      return 1;
  return 0;
}

static void pause_ms(int64_t ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* POSTs body within the budget; connections that were refused are tried
 * again (nothing reached the webhook) until the budget runs out. */
static int post_within_budget(struct custom *c, struct provd_call *call,
                              const char *url, const char *body,
                              struct provd_http_resp *resp,
                              struct failure *f)
{
  const struct provd_host_api *h = c->host;
  static const char *const headers[] = {
      "Content-Type: application/json; charset=utf-8",
      "Accept: application/json", NULL};
  uint64_t end = h->mono_ns() + (uint64_t)c->budget_ms * NS_PER_MS;
  for (;;) {
    uint64_t now = h->mono_ns();
    if (now >= end)
      break;
    struct provd_http_req req = {
        .struct_size = sizeof(req),
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = (const uint8_t *)body,
        .body_len = strlen(body),
        .timeout_ms = (int64_t)((end - now) / NS_PER_MS) + 1,
        .ca_file = c->ca_file[0] ? c->ca_file : NULL,
    };
    *resp = (struct provd_http_resp){.struct_size = sizeof(*resp)};
    int rc = h->http_request(c->inst, call, &req, resp);
    if (rc == PROVD_OK)
      return PROVD_OK;
    if (rc == PROVD_E_TIMEOUT) {
      snprintf(f->why, sizeof(f->why), "no answer within %lld ms",
               (long long)c->budget_ms);
      return rc;
    }
    snprintf(f->why, sizeof(f->why), "%s",
             resp->not_connected ? "connection refused" : "transport error");
    if (!resp->not_connected)
      return rc;
    pause_ms(CUSTOM_RETRY_PAUSE_MS);
  }
  if (!f->why[0])
    snprintf(f->why, sizeof(f->why), "no answer within %lld ms",
             (long long)c->budget_ms);
  return PROVD_E_TIMEOUT;
}

static int is_candidate(const struct provd_alloc_request *req,
                        const char *host)
{
  for (size_t i = 0; i < req->n_hubs; i++)
    if (strcasecmp(req->hubs[i]->hostname, host) == 0)
      return 1;
  return 0;
}

/* Sets initialTwin / payload of a good answer. */
static int take_member(struct custom *c, struct provd_alloc_result *res,
                       json_t *answer, const char *key, struct failure *f)
{
  json_t *v = json_object_get(answer, key);
  if (!v || json_is_null(v))
    return PROVD_OK;
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  int rc = text ? c->host->alloc_set_data(res, key, text) : PROVD_E_NOMEM;
  free(text);
  if (rc != PROVD_OK)
    snprintf(f->why, sizeof(f->why), "answer's %s is not acceptable (an "
             "object of at most 16 KiB)", key);
  return rc;
}

/* The AllocationResponse: iotHubHostName (a candidate), initialTwin,
 * payload. */
static int read_answer(struct custom *c, const struct provd_alloc_request *req,
                       const struct provd_http_resp *resp,
                       struct provd_alloc_result *res, struct failure *f)
{
  f->status = resp->status;
  if (resp->status < 200 || resp->status > 299) {
    snprintf(f->why, sizeof(f->why), "answered HTTP %d", resp->status);
    return PROVD_DENIED;
  }
  json_t *answer = json_loadb((const char *)resp->body, resp->body_len,
                              JSON_REJECT_DUPLICATES, NULL);
  const char *hub = json_string_value(json_object_get(answer,
                                                      "iotHubHostName"));
  int rc = PROVD_DENIED;
  if (!json_is_object(answer))
    snprintf(f->why, sizeof(f->why), "answer is not a JSON object");
  else if (!hub)
    snprintf(f->why, sizeof(f->why), "answer has no iotHubHostName");
  else if (!is_candidate(req, hub))
    snprintf(f->why, sizeof(f->why), "answer names hub '%.100s', not one "
             "of linkedHubs", hub);
  else if (take_member(c, res, answer, "initialTwin", f) == PROVD_OK &&
           take_member(c, res, answer, "payload", f) == PROVD_OK)
    rc = c->host->alloc_set_hub(res, hub, "custom: the webhook's answer");
  json_decref(answer);
  return rc;
}

/* The enrollment's customAllocationDefinition.<key>, or NULL. */
static const char *definition(const struct custom *c,
                              const struct provd_alloc_request *req,
                              const char *key)
{
  const struct provd_cfg *def = NULL;
  const char *v = NULL;
  if (c->host->cfg_child(req->enrollment, "customAllocationDefinition",
                         &def) != PROVD_OK ||
      c->host->cfg_str(def, key, &v) != PROVD_OK)
    return NULL;
  return v;
}

/* The webhook failed: the fallback policy decides, or the registration
 * fails with DPS's 400207 message. */
static int fall_back(struct custom *c, const struct provd_alloc_request *req,
                     const struct failure *f, struct provd_alloc_result *res,
                     struct provd_err *err)
{
  const char *fallback = definition(c, req, "fallbackPolicy");
  if (!fallback || !*fallback)
    fallback = c->fallback;
  c->host->log(c->inst, NULL, PROVD_LOG_WARN,
               "registration %s: custom allocation webhook failed (%s); "
               "fallback %s", req->registration_id, f->why, fallback);
  c->host->counter_add(c->inst, "webhook_failures_total",
                       "Custom allocation webhook calls without a usable "
                       "answer.", 1);
  if (strcmp(fallback, "fail") == 0 && req->dry_run) {
    c->host->err_set(err, "ALLOCATION_WEBHOOK_FAILED",
                     "dry run: webhook not called (--call-webhook calls "
                     "it); should it fail, the fallback is fail");
    return PROVD_DENIED;
  }
  if (strcmp(fallback, "fail") == 0) {
    c->host->err_set(err, "ALLOCATION_WEBHOOK_FAILED",
                     "Custom allocation failed with status code: %d",
                     f->status);
    return PROVD_DENIED;
  }
  char why[256];
  snprintf(why, sizeof(why), "webhook failed (%s): fallback", f->why);
  return c->host->alloc_delegate(res, fallback, NULL, 0, why);
}

static int custom_allocate(void *state, struct provd_call *call,
                           const struct provd_alloc_request *req,
                           struct provd_alloc_result *res,
                           struct provd_err *err)
{
  struct custom *c = state;
  const struct provd_host_api *h = c->host;
  struct failure f = {0};
  const char *url = definition(c, req, "webhookUrl");
  if (!PROVD_HAS(req, struct provd_alloc_request, dry_run) ||
      !req->allocation_request_json) {
    h->err_set(err, "INTERNAL", "the host gave no AllocationRequest");
    return PROVD_E_INTERNAL;
  }
  if (!url || !url_allowed(url)) {
    snprintf(f.why, sizeof(f.why), "%s", url ? "webhookUrl is neither "
             "https:// nor http:// to loopback" : "no webhookUrl");
    return fall_back(c, req, &f, res, err);
  }
  if (req->dry_run) {
    snprintf(f.why, sizeof(f.why), "dry run: webhook not called");
    return fall_back(c, req, &f, res, err);
  }
  if (!breaker_allow(&c->breaker, h->mono_ns())) {
    snprintf(f.why, sizeof(f.why), "circuit breaker open");
    return fall_back(c, req, &f, res, err);
  }
  struct provd_http_resp resp;
  int rc = post_within_budget(c, call, url, req->allocation_request_json,
                              &resp, &f);
  if (rc == PROVD_OK)
    rc = read_answer(c, req, &resp, res, &f);
  breaker_record(&c->breaker, rc == PROVD_OK, h->mono_ns());
  return rc == PROVD_OK ? PROVD_OK : fall_back(c, req, &f, res, err);
}

/* ---- descriptor ---- */

/* Keep docs/plugins/custom-webhook.md in sync (test_plugin_docs checks). */
static const struct provd_option custom_options[] = {
    {"timeout", PROVD_OPT_DURATION, "5s", 0,
     "Time budget of one allocation: connecting, retries of refused "
     "connections, the answer (1ms..60s).",
     NULL},
    {"fallback", PROVD_OPT_STRING, "fail", 0,
     "What decides when the webhook fails: fail (the registration fails "
     "with 400207) or another policy by name; an enrollment's "
     "customAllocationDefinition.fallbackPolicy overrides it.",
     NULL},
    {"breaker_failures", PROVD_OPT_INT, "5", 0,
     "Consecutive failures that open the circuit breaker; 0 never opens "
     "it.",
     NULL},
    {"breaker_cooldown", PROVD_OPT_DURATION, "30s", 0,
     "How long an open breaker sends every registration to the fallback "
     "before one probe call.",
     NULL},
    {"ca_file", PROVD_OPT_PATH, NULL, 0,
     "PEM file of the CAs a https webhook must chain to; default: the "
     "system's.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle custom_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = custom_create,
    .configure = custom_configure,
    .destroy = custom_destroy,
};

static const struct provd_alloc_ops custom_ops = {
    .struct_size = sizeof(struct provd_alloc_ops),
    .policy = "custom",
    .allocate = custom_allocate,
};

/* Not NONBLOCKING: allocate() waits for the webhook, so the engine reads
 * such registrations on the store readers, never on the writer. */
PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ALLOCATION,
    .flags = PROVD_PLUGIN_THREADSAFE,
    .min_host_minor = 5,
    .name = "custom-webhook",
    .version = PROVD_VERSION,
    .description = "DPS custom allocation webhook with a time budget, a "
                   "fallback policy and a circuit breaker (DPS "
                   "allocationPolicy custom)",
    .vendor = "provd",
    .options = custom_options,
    .lifecycle = &custom_lifecycle,
    .ops = &custom_ops,
};
