/* webhook notifier: POSTs each event as a CloudEvents 1.0 structured JSON
 * document, signed with X-Provd-Signature: t=<unix>,v1=<hex
 * HMAC-SHA256(secret, t "." body)>.  2xx is delivered; 408, 429, 5xx
 * and network errors are temporary (Retry-After is passed to the host);
 * any other answer is permanent (dead letter).  See
 * docs/plugins/webhook.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "provd/host.h"
#include "provd/notifier.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define WEBHOOK_MAX_URL 2048
#define WEBHOOK_MAX_SECRET 1024
#define WEBHOOK_MAX_SOURCE 256
#define WEBHOOK_MAX_TIMEOUT_MS (10LL * 60 * 1000)
/* Receivers answer small bodies; anything beyond this is not read. */
#define WEBHOOK_MAX_ANSWER (64 * 1024)

struct webhook {
  const struct provd_host_api *host;
  struct provd_instance *inst;
  char url[WEBHOOK_MAX_URL];
  unsigned char secret[WEBHOOK_MAX_SECRET];
  size_t secret_len;
  char source[WEBHOOK_MAX_SOURCE];
  char ca_file[WEBHOOK_MAX_URL];
  int64_t timeout_ms;
  int curl_ready;
};

/* ---- lifecycle ---- */

static int webhook_create(const struct provd_host_api *host,
                          struct provd_instance *inst, void **state,
                          struct provd_err *err)
{
  struct webhook *wh = calloc(1, sizeof(*wh));
  if (!wh) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  wh->host = host;
  wh->inst = inst;
  wh->timeout_ms = 10000;
  *state = wh;
  return PROVD_OK;
}

/* Copies string option `name` into out (cap bytes); absent is fine
 * unless required. */
static int copy_option(const struct webhook *wh, const struct provd_cfg *o,
                       const char *name, char *out, size_t cap,
                       int required, struct provd_err *err)
{
  const char *v = NULL;
  int rc = o ? wh->host->cfg_str(o, name, &v) : PROVD_NOT_FOUND;
  if (rc == PROVD_NOT_FOUND && !required)
    return PROVD_OK;
  if (rc != PROVD_OK || !v[0] || strlen(v) >= cap) {
    wh->host->err_set(err, "BAD_OPTION", "%s: missing, empty or longer "
                      "than %zu bytes", name, cap - 1);
    return PROVD_E_CONFIG;
  }
  memcpy(out, v, strlen(v) + 1);
  return PROVD_OK;
}

static int webhook_configure(void *state, const struct provd_cfg *o,
                             struct provd_err *err)
{
  struct webhook *wh = state;
  char secret[WEBHOOK_MAX_SECRET];
  int rc = copy_option(wh, o, "url", wh->url, sizeof(wh->url), 1, err);
  if (rc == PROVD_OK)
    rc = copy_option(wh, o, "secret", secret, sizeof(secret), 1, err);
  if (rc == PROVD_OK)
    rc = copy_option(wh, o, "source", wh->source, sizeof(wh->source), 0,
                     err);
  if (rc == PROVD_OK)
    rc = copy_option(wh, o, "ca_file", wh->ca_file, sizeof(wh->ca_file), 0,
                     err);
  if (rc != PROVD_OK)
    return rc;
  if (strncmp(wh->url, "http://", 7) != 0 &&
      strncmp(wh->url, "https://", 8) != 0) {
    wh->host->err_set(err, "BAD_OPTION", "url: must be http:// or https://");
    return PROVD_E_CONFIG;
  }
  if (!wh->source[0])
    snprintf(wh->source, sizeof(wh->source), "provd");
  wh->secret_len = strlen(secret);
  memcpy(wh->secret, secret, wh->secret_len);
  memset(secret, 0, sizeof(secret));
  int64_t ms = wh->timeout_ms;
  if (o && wh->host->cfg_int(o, "timeout", &ms) == PROVD_OK &&
      (ms < 100 || ms > WEBHOOK_MAX_TIMEOUT_MS)) {
    wh->host->err_set(err, "BAD_OPTION", "timeout: must be 100ms..10m");
    return PROVD_E_CONFIG;
  }
  wh->timeout_ms = ms;
  return PROVD_OK;
}

static int webhook_start(void *state, struct provd_err *err)
{
  struct webhook *wh = state;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    wh->host->err_set(err, "CURL_INIT", "libcurl could not be initialised");
    return PROVD_E_INTERNAL;
  }
  wh->curl_ready = 1;
  return PROVD_OK;
}

static void webhook_stop(void *state)
{
  struct webhook *wh = state;
  if (wh->curl_ready)
    curl_global_cleanup();
  wh->curl_ready = 0;
}

static void webhook_destroy(void *state)
{
  struct webhook *wh = state;
  if (!wh)
    return;
  memset(wh->secret, 0, sizeof(wh->secret));
  free(wh);
}

/* ---- the CloudEvent ---- */

/* RFC 3339 UTC with milliseconds. */
static void rfc3339(int64_t unix_ms, char out[32])
{
  time_t s = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char base[24];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03dZ", base, (int)(unix_ms % 1000));
}

/* The structured-mode document; caller frees.  `data` is the event's
 * JSON; `sequence` (extension attribute) is the journal position. */
static char *cloudevent(const struct webhook *wh,
                        const struct provd_event *ev)
{
  char when[32], seq[24], id[48];
  rfc3339(ev->time_ms, when);
  snprintf(seq, sizeof(seq), "%" PRIu64, ev->id);
  snprintf(id, sizeof(id), "%s", ev->event_id ? ev->event_id : "");
  json_t *data = json_loads(ev->body_json ? ev->body_json : "{}", 0, NULL);
  json_t *doc = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o*}", "specversion", "1.0",
      "id", id, "source", wh->source, "type", ev->type, "time", when,
      "sequence", seq, "datacontenttype", "application/json", "data", data);
  if (!doc)
    return NULL;
  if (ev->registration_id)
    json_object_set_new(doc, "subject", json_string(ev->registration_id));
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  return text;
}

/* "X-Provd-Signature: t=<unix>,v1=<hex>" into out. */
static int signature_header(const struct webhook *wh, const char *body,
                            char *out, size_t cap, struct provd_err *err)
{
  char t[24];
  snprintf(t, sizeof(t), "%" PRId64, wh->host->unix_ms() / 1000);
  size_t tlen = strlen(t), blen = strlen(body);
  char *msg = malloc(tlen + 1 + blen);
  if (!msg) {
    wh->host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  memcpy(msg, t, tlen);
  msg[tlen] = '.';
  memcpy(msg + tlen + 1, body, blen);
  uint8_t mac[PROVD_HMAC_SHA256_LEN];
  int rc = wh->host->hmac_sha256(wh->secret, wh->secret_len,
                                 (const uint8_t *)msg, tlen + 1 + blen, mac,
                                 sizeof(mac), err);
  free(msg);
  if (rc != PROVD_OK)
    return rc;
  int n = snprintf(out, cap, "X-Provd-Signature: t=%s,v1=", t);
  for (size_t i = 0; i < sizeof(mac) && (size_t)n + 2 < cap; i++)
    n += snprintf(out + n, cap - (size_t)n, "%02x", mac[i]);
  return PROVD_OK;
}

/* ---- HTTP ---- */

struct answer {
  int64_t retry_after_ms; /* -1: none */
  size_t body_bytes;
};

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
  struct answer *a = ud;
  (void)p;
  a->body_bytes += size * n;
  return a->body_bytes > WEBHOOK_MAX_ANSWER ? 0 : size * n;
}

/* Retry-After: delay-seconds or an HTTP-date. */
static int64_t parse_retry_after(const char *v, int64_t now_ms)
{
  while (*v == ' ' || *v == '\t')
    v++;
  char *end = NULL;
  long long s = strtoll(v, &end, 10);
  if (end != v && (*end == '\0' || *end == '\r' || *end == '\n' ||
                   *end == ' ') && s >= 0)
    return s > 86400 ? 86400000LL : s * 1000LL;
  char date[128];
  size_t n = strcspn(v, "\r\n");
  if (n >= sizeof(date))
    return -1;
  memcpy(date, v, n);
  date[n] = '\0';
  time_t when = curl_getdate(date, NULL);
  if (when < 0)
    return -1;
  int64_t ms = (int64_t)when * 1000 - now_ms;
  return ms < 0 ? 0 : ms;
}

static size_t read_header(char *p, size_t size, size_t n, void *ud)
{
  struct answer *a = ud;
  size_t len = size * n;
  static const char name[] = "retry-after:";
  if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
    char v[160];
    size_t vlen = len - (sizeof(name) - 1);
    if (vlen >= sizeof(v))
      vlen = sizeof(v) - 1;
    memcpy(v, p + sizeof(name) - 1, vlen);
    v[vlen] = '\0';
    a->retry_after_ms = parse_retry_after(v, (int64_t)time(NULL) * 1000);
  }
  return len;
}

static int temporary_status(long status)
{
  return status == 408 || status == 429 || status >= 500;
}

/* Maps the outcome of one POST to a provd status and reason. */
static int judge(struct webhook *wh, struct provd_call *call, CURLcode cc,
                 long status, const struct answer *a,
                 const struct provd_event *ev, struct provd_err *err)
{
  if (cc == CURLE_OPERATION_TIMEDOUT) {
    wh->host->err_set(err, "WEBHOOK_TIMEOUT", "no answer from %s within "
                      "%" PRId64 " ms", wh->url, wh->timeout_ms);
    return PROVD_E_TIMEOUT;
  }
  if (cc != CURLE_OK) {
    wh->host->err_set(err, "WEBHOOK_UNREACHABLE", "%s: %s", wh->url,
                      curl_easy_strerror(cc));
    return PROVD_E_UNAVAILABLE;
  }
  if (status >= 200 && status < 300)
    return PROVD_OK;
  if (temporary_status(status)) {
    if (a->retry_after_ms >= 0 &&
        PROVD_HAS(wh->host, struct provd_host_api, call_set_retry_after))
      wh->host->call_set_retry_after(call, a->retry_after_ms);
    wh->host->err_set(err, "WEBHOOK_UNAVAILABLE", "%s answered %ld", wh->url,
                      status);
    return PROVD_E_UNAVAILABLE;
  }
  wh->host->err_set(err, "WEBHOOK_REJECTED", "%s answered %ld to event %"
                    PRIu64 "; not retried", wh->url, status, ev->id);
  return PROVD_E_INVAL;
}

static struct curl_slist *request_headers(const char *signature)
{
  struct curl_slist *h = NULL, *next;
  static const char *const fixed[] = {
      "Content-Type: application/cloudevents+json; charset=utf-8",
      "User-Agent: provd-webhook/" PROVD_VERSION, "Expect:"};
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    if (!(next = curl_slist_append(h, fixed[i])))
      goto fail;
    h = next;
  }
  if ((next = curl_slist_append(h, signature)))
    return next;
fail:
  curl_slist_free_all(h);
  return NULL;
}

static int post(struct webhook *wh, struct provd_call *call,
                const struct provd_event *ev, const char *body,
                const char *signature, struct provd_err *err)
{
  CURL *c = curl_easy_init();
  struct curl_slist *headers = request_headers(signature);
  if (!c || !headers) {
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    wh->host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  struct answer a = {.retry_after_ms = -1};
  curl_easy_setopt(c, CURLOPT_URL, wh->url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)wh->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
  if (wh->ca_file[0])
    curl_easy_setopt(c, CURLOPT_CAINFO, wh->ca_file);
  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (cc == CURLE_WRITE_ERROR && status > 0)
    cc = CURLE_OK; /* a long answer body we stopped reading */
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return judge(wh, call, cc, status, &a, ev, err);
}

static int webhook_deliver(void *state, struct provd_call *call,
                           const struct provd_event *ev,
                           struct provd_err *err)
{
  struct webhook *wh = state;
  char *body = cloudevent(wh, ev);
  if (!body) {
    wh->host->err_set(err, "WEBHOOK_EVENT", "event %" PRIu64 " could not "
                      "be encoded", ev->id);
    return PROVD_E_INVAL;
  }
  char signature[160];
  int rc = signature_header(wh, body, signature, sizeof(signature), err);
  if (rc == PROVD_OK)
    rc = post(wh, call, ev, body, signature, err);
  if (rc == PROVD_OK)
    wh->host->log(wh->inst, call, PROVD_LOG_DEBUG, "event %" PRIu64 " %s "
                  "delivered to %s", ev->id, ev->type, wh->url);
  free(body);
  return rc;
}

/* ---- descriptor ---- */

static const struct provd_option webhook_options[] = {
  {"url", PROVD_OPT_URL, NULL, PROVD_OPT_REQUIRED,
   "Where events are POSTed (http:// or https://).", NULL},
  {"secret", PROVD_OPT_STRING, NULL,
   PROVD_OPT_REQUIRED | PROVD_OPT_SENSITIVE,
   "HMAC-SHA256 key of the X-Provd-Signature header; or secret_file: PATH.",
   NULL},
  {"timeout", PROVD_OPT_DURATION, "10s", 0,
   "How long one POST may take (100ms to 10m).", NULL},
  {"source", PROVD_OPT_STRING, "provd", 0,
   "The CloudEvents source attribute of every event.", NULL},
  {"ca_file", PROVD_OPT_PATH, NULL, 0,
   "PEM file of CAs to trust for https:// (default: the system store).",
   NULL},
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle webhook_lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = webhook_create,
  .configure = webhook_configure,
  .start = webhook_start,
  .stop = webhook_stop,
  .destroy = webhook_destroy,
};

static const struct provd_notifier_ops webhook_ops = {
  .struct_size = sizeof(struct provd_notifier_ops),
  .deliver = webhook_deliver,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_NOTIFIER,
  .flags = PROVD_PLUGIN_THREADSAFE,
  .min_host_minor = 3, /* event ids, call_set_retry_after */
  .name = "webhook",
  .version = PROVD_VERSION,
  .description = "POSTs events as signed CloudEvents 1.0 JSON.",
  .vendor = "provd project",
  .options = webhook_options,
  .lifecycle = &webhook_lifecycle,
  .ops = &webhook_ops,
};
