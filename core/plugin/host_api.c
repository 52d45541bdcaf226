/* The host services table every plugin receives in create().  One static
 * instance; the `struct provd_instance` a plugin holds is the host's
 * `struct plugin_instance`. */
#include "plugin/loader.h"
#include "plugin/loader_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "util/b64.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/secret.h"
#include "util/timefmt.h"

#define DEVICE_ID_MAX 128
#define CLAIM_KEY_MAX 128
#define CLAIM_VALUE_MAX 4096
#define MAX_CLAIMS 64
#define CHALLENGE_MAX (64 * 1024)
#define SESSION_MAX (64 * 1024)
#define STATE_MAX (16 * 1024) /* attest_set_state: certificate infos fit */
#define RANDOM_MAX (1024 * 1024)
#define METRIC_NAME_MAX 100
#define HUB_KEY_MIN 16 /* attest_set_hub_key: IoT Hub takes 16..64 bytes */
#define HUB_KEY_MAX 64

static const struct plugin_instance *host_inst(struct provd_instance *inst)
{
  return (const struct plugin_instance *)inst;
}

static int clamp_level(int level)
{
  if (level < PROVD_LOG_ERROR)
    return LOG_ERROR;
  return level > PROVD_LOG_DEBUG ? LOG_DEBUG : level;
}

static int h_log_enabled(struct provd_instance *inst, int level)
{
  (void)inst;
  return clamp_level(level) <= log_get_level();
}

static void h_log(struct provd_instance *inst, struct provd_call *call,
                  int level, const char *fmt, ...)
{
  level = clamp_level(level);
  if (level > log_get_level() || !fmt)
    return;
  char component[64];
  snprintf(component, sizeof(component), "plugin:%s",
           inst ? host_inst(inst)->id : "?");
  char msg[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (call && call->trace_id[0])
    log_msg(level, component, "%s trace=%s", msg, call->trace_id);
  else
    log_msg(level, component, "%s", msg);
}

static void h_err_set(struct provd_err *err, const char *reason_code,
                      const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  perr_vset(err, reason_code, fmt, ap);
  va_end(ap);
}

static int h_random(uint8_t *buf, size_t len)
{
  if (!buf || len > RANDOM_MAX)
    return PROVD_E_INVAL;
  if (len == 0)
    return PROVD_OK;
  return RAND_bytes(buf, (int)len) == 1 ? PROVD_OK : PROVD_E_INTERNAL;
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int metric_name_valid(const char *s)
{
  size_t len = s ? strnlen(s, METRIC_NAME_MAX + 1) : 0;
  if (len == 0 || len > METRIC_NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      return 0;
  }
  return 1;
}

/* Label values escape backslash, quote and newline. */
static void escape_label(char *out, size_t out_len, const char *in)
{
  size_t o = 0;
  for (size_t i = 0; in[i] && o + 3 < out_len; i++) {
    char c = in[i];
    if (c == '\\' || c == '"' || c == '\n') {
      out[o++] = '\\';
      c = c == '\n' ? 'n' : c;
    }
    out[o++] = c;
  }
  out[o] = '\0';
}

static void h_counter_add(struct provd_instance *inst, const char *name,
                          const char *help, double value)
{
  if (!inst || !metric_name_valid(name))
    return;
  char metric[160], id[160], labels[192];
  snprintf(metric, sizeof(metric), "provd_plugin_%s", name);
  escape_label(id, sizeof(id), host_inst(inst)->id);
  snprintf(labels, sizeof(labels), "instance=\"%s\"", id);
  metrics_add(metric, help ? help : "plugin counter", labels, value);
}

static const char *h_call_trace_id(const struct provd_call *call)
{
  return call ? call->trace_id : "";
}

static uint64_t h_call_deadline_ns(const struct provd_call *call)
{
  return call ? call->deadline_ns : 0;
}

/* ---- result builders ---- */

static int printable_ascii(const char *s, size_t max)
{
  size_t len = s ? strnlen(s, max + 1) : 0;
  if (len == 0 || len > max)
    return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
      return 0;
  return 1;
}

static int h_attest_set_device_id(struct provd_attest_result *r,
                                  const char *device_id)
{
  if (!r || !printable_ascii(device_id, DEVICE_ID_MAX))
    return PROVD_E_INVAL;
  char *copy = strdup(device_id);
  if (!copy)
    return PROVD_E_NOMEM;
  free(r->device_id);
  r->device_id = copy;
  return PROVD_OK;
}

static int h_attest_add_claim(struct provd_attest_result *r, const char *key,
                              const char *value)
{
  if (!r || !printable_ascii(key, CLAIM_KEY_MAX) || !value ||
      strnlen(value, CLAIM_VALUE_MAX + 1) > CLAIM_VALUE_MAX)
    return PROVD_E_INVAL;
  if (!r->claims && !(r->claims = json_object()))
    return PROVD_E_NOMEM;
  if (json_object_size(r->claims) >= MAX_CLAIMS &&
      !json_object_get(r->claims, key))
    return PROVD_E_INVAL;
  json_t *v = json_string(value); /* NULL for invalid UTF-8 */
  if (!v)
    return PROVD_E_INVAL;
  return json_object_set_new(r->claims, key, v) == 0 ? PROVD_OK
                                                      : PROVD_E_NOMEM;
}

static int h_attest_set_challenge(struct provd_attest_result *r,
                                  const char *challenge_json,
                                  const uint8_t *session, size_t session_len)
{
  if (!r || !challenge_json ||
      strnlen(challenge_json, CHALLENGE_MAX + 1) > CHALLENGE_MAX ||
      session_len > SESSION_MAX || (session_len && !session))
    return PROVD_E_INVAL;
  json_t *parsed = json_text_parse(challenge_json, strlen(challenge_json),
                                   JSON_TEXT_ANY);
  if (!parsed)
    return PROVD_E_INVAL;
  json_decref(parsed);
  char *json_copy = strdup(challenge_json);
  unsigned char *session_copy = session_len ? malloc(session_len) : NULL;
  if (!json_copy || (session_len && !session_copy)) {
    free(json_copy);
    free(session_copy);
    return PROVD_E_NOMEM;
  }
  if (session_len)
    memcpy(session_copy, session, session_len);
  free(r->challenge_json);
  free(r->session);
  r->challenge_json = json_copy;
  r->session = session_copy;
  r->session_len = session_len;
  return PROVD_OK;
}

static int h_attest_set_reuse_until(struct provd_attest_result *r,
                                    int64_t unix_s)
{
  if (!r || unix_s <= 0)
    return PROVD_E_INVAL;
  r->reuse_until_s = unix_s;
  return PROVD_OK;
}

static const char *const STATE_KEYS[] = {"x509", "tpm", "symmetricKey",
                                          NULL};

static int h_attest_set_state(struct provd_attest_result *r, const char *key,
                              const char *object_json)
{
  int known = 0;
  for (size_t i = 0; key && STATE_KEYS[i] && !known; i++)
    known = strcmp(key, STATE_KEYS[i]) == 0;
  if (!r || !known || !object_json ||
      strnlen(object_json, STATE_MAX + 1) > STATE_MAX)
    return PROVD_E_INVAL;
  json_t *parsed = json_text_parse(object_json, strlen(object_json),
                                   JSON_TEXT_UNIQUE_KEYS);
  if (!json_is_object(parsed)) {
    json_decref(parsed);
    return PROVD_E_INVAL;
  }
  char *key_copy = strdup(key);
  if (!key_copy) {
    json_decref(parsed);
    return PROVD_E_NOMEM;
  }
  free(r->state_key);
  json_decref(r->state);
  r->state_key = key_copy;
  r->state = parsed;
  return PROVD_OK;
}

static int h_attest_set_match_depth(struct provd_attest_result *r,
                                    uint32_t depth)
{
  if (!r || depth == 0)
    return PROVD_E_INVAL;
  r->match_depth = depth;
  return PROVD_OK;
}

static int h_alloc_set_hub(struct provd_alloc_result *r, const char *hub_name,
                           const char *reason)
{
  if (!r || !hub_name || !hub_name[0] ||
      strnlen(hub_name, sizeof(r->hub)) >= sizeof(r->hub) ||
      (reason && strnlen(reason, sizeof(r->reason)) >= sizeof(r->reason)))
    return PROVD_E_INVAL;
  snprintf(r->hub, sizeof(r->hub), "%s", hub_name);
  snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
  return PROVD_OK;
}

static int h_alloc_delegate(struct provd_alloc_result *r, const char *policy,
                            const char *const *hub_names, size_t n_hubs,
                            const char *why)
{
  if (!r || !policy || !policy[0] ||
      strnlen(policy, sizeof(r->delegate)) >= sizeof(r->delegate) ||
      n_hubs > ALLOC_MAX_HUBS || (n_hubs && !hub_names))
    return PROVD_E_INVAL;
  for (size_t i = 0; i < n_hubs; i++)
    if (!hub_names[i] || !hub_names[i][0] ||
        strnlen(hub_names[i], sizeof(r->delegate_hubs[i])) >=
            sizeof(r->delegate_hubs[i]))
      return PROVD_E_INVAL;
  snprintf(r->delegate, sizeof(r->delegate), "%s", policy);
  for (size_t i = 0; i < n_hubs; i++)
    snprintf(r->delegate_hubs[i], sizeof(r->delegate_hubs[i]), "%s",
             hub_names[i]);
  r->n_delegate_hubs = n_hubs;
  snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
  return PROVD_OK;
}

#define ALLOC_DATA_MAX (16 * 1024)

static int h_alloc_set_data(struct provd_alloc_result *r, const char *key,
                            const char *json)
{
  if (!r || !key || !json || strnlen(json, ALLOC_DATA_MAX + 1) > ALLOC_DATA_MAX)
    return PROVD_E_INVAL;
  int is_twin = strcmp(key, "initialTwin") == 0;
  if (!is_twin && strcmp(key, "payload") != 0)
    return PROVD_E_INVAL;
  json_t *parsed =
      json_text_parse(json, strlen(json), JSON_TEXT_ANY | JSON_TEXT_UNIQUE_KEYS);
  if (!parsed || (is_twin && !json_is_object(parsed))) {
    json_decref(parsed);
    return PROVD_E_INVAL;
  }
  json_t **slot = is_twin ? &r->initial_twin : &r->payload;
  json_decref(*slot);
  *slot = parsed;
  return PROVD_OK;
}

void alloc_result_clear(struct provd_alloc_result *r)
{
  if (!r)
    return;
  json_decref(r->initial_twin);
  json_decref(r->payload);
  memset(r, 0, sizeof(*r));
}

static int h_attest_set_hub_key(struct provd_attest_result *r,
                                const uint8_t *key, size_t key_len)
{
  if (!r || !key || key_len < HUB_KEY_MIN || key_len > HUB_KEY_MAX)
    return PROVD_E_INVAL;
  char *b64 = b64_encode(key, key_len);
  if (!b64)
    return PROVD_E_NOMEM;
  secret_free(r->hub_key_b64);
  r->hub_key_b64 = b64;
  return PROVD_OK;
}

void attest_result_clear(struct provd_attest_result *r)
{
  if (!r)
    return;
  secret_free(r->hub_key_b64);
  free(r->device_id);
  json_decref(r->claims);
  free(r->challenge_json);
  free(r->session);
  free(r->state_key);
  json_decref(r->state);
  memset(r, 0, sizeof(*r));
}

#define RETRY_AFTER_MAX_MS (3600LL * 1000)

static int h_call_set_retry_after(struct provd_call *call, int64_t ms)
{
  if (!call || ms < 0)
    return PROVD_E_INVAL;
  call->retry_after_ms = ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : ms;
  return PROVD_OK;
}

static const struct provd_host_api the_host_api = {
  .struct_size = sizeof(struct provd_host_api),
  .abi_major = PROVD_ABI_MAJOR,
  .abi_minor = PROVD_ABI_MINOR,
  .log = h_log,
  .log_enabled = h_log_enabled,
  .err_set = h_err_set,
  .strstatus = perr_strstatus,
  .cfg_str = host_cfg_str,
  .cfg_int = host_cfg_int,
  .cfg_bool = host_cfg_bool,
  .cfg_double = host_cfg_double,
  .cfg_child = host_cfg_child,
  .cfg_count = host_cfg_count,
  .cfg_at = host_cfg_at,
  .cfg_text = host_cfg_text,
  .mono_ns = time_mono_ns,
  .unix_ms = time_now_ms,
  .random = h_random,
  .counter_add = h_counter_add,
  .call_trace_id = h_call_trace_id,
  .call_deadline_ns = h_call_deadline_ns,
  .http_request = host_http_request,
  .attest_set_device_id = h_attest_set_device_id,
  .attest_add_claim = h_attest_add_claim,
  .attest_set_challenge = h_attest_set_challenge,
  .alloc_set_hub = h_alloc_set_hub,
  /* ABI minor 1 */
  .b64_encode = host_b64_encode,
  .b64_decode = host_b64_decode,
  .hmac_sha256 = host_hmac_sha256,
  .sas_parse = host_sas_parse,
  .sas_check = host_sas_check,
  .sas_verify = host_sas_verify,
  .attest_set_reuse_until = h_attest_set_reuse_until,
  /* ABI minor 2 */
  .attest_set_state = h_attest_set_state,
  .attest_set_match_depth = h_attest_set_match_depth,
  /* ABI minor 3 */
  .call_set_retry_after = h_call_set_retry_after,
  /* ABI minor 4 */
  .alloc_delegate = h_alloc_delegate,
  .alloc_set_data = h_alloc_set_data,
  /* ABI minor 9 */
  .attest_set_hub_key = h_attest_set_hub_key,
};

const struct provd_host_api *host_api(void)
{
  return &the_host_api;
}
