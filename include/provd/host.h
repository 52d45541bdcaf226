/* provd host services: the table the host passes to create().
 *
 * Every function is thread-safe unless its comment says otherwise.  The
 * table and everything it returns stay valid until the instance's
 * destroy() returns.  Strings handed to the host are copied; strings the
 * host hands out are borrowed for the duration of the call.
 */
#ifndef PROVD_HOST_H
#define PROVD_HOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

enum provd_log_level {
  PROVD_LOG_ERROR = 0,
  PROVD_LOG_WARN = 1,
  PROVD_LOG_INFO = 2,
  PROVD_LOG_DEBUG = 3
};

/* Outbound HTTP request (blocking; see http_request). */
struct provd_http_req {
  uint32_t struct_size;
  const char *method;               /* "GET", "POST", ... */
  const char *url;
  const char *const *headers;       /* "Name: value", NULL-ended, or NULL */
  const uint8_t *body;
  size_t body_len;
  int64_t timeout_ms;               /* 0: host default (10 s) */
  /* ABI minor 5: PEM file of the CAs an https server must chain to;
   * NULL: the system's.  The peer's name is always verified. */
  const char *ca_file;
};

/* The host fills this; body is host-owned until the next call on the same
 * struct or until the op returns. */
struct provd_http_resp {
  uint32_t struct_size;
  int status;                       /* HTTP status, 0 if none */
  const uint8_t *body;
  size_t body_len;
  /* ABI minor 5: 1 when no connection was made (refused, unreachable,
   * name not resolved): nothing reached the peer, so a retry is safe. */
  int not_connected;
};

/* ABI minor 1: SharedAccessSignature tokens
 * ("SharedAccessSignature sr=..&sig=..&se=..[&skn=..]", as DPS devices and
 * TPM clients send them).  The signature is
 * base64(HMAC-SHA256(key, sr "\n" se)) over sr and se exactly as sent. */
#define PROVD_SAS_MAX_TOKEN 4096 /* longest token text accepted, NUL included */
/* A parse buffer that holds any token sas_parse accepts. */
#define PROVD_SAS_BUF_SIZE (2 * PROVD_SAS_MAX_TOKEN)
#define PROVD_HMAC_SHA256_LEN 32

/* A parsed token.  The strings point into the buffer given to sas_parse
 * and live as long as it does.  Set struct_size before the call. */
struct provd_sas_token {
  uint32_t struct_size;
  const char *resource_raw; /* sr exactly as sent (the signed bytes) */
  const char *resource;     /* sr percent-decoded */
  const char *signature;    /* sig percent-decoded (base64) */
  const char *expiry_raw;   /* se exactly as sent (the signed bytes) */
  int64_t expiry;           /* se: Unix seconds */
  const char *key_name;     /* skn percent-decoded; NULL when absent */
};

/* What a token must satisfy apart from its signature (sas_check).  Set
 * struct_size; zeroed fields check nothing. */
struct provd_sas_policy {
  uint32_t struct_size;
  /* Who sent the token, to start error messages ("registration dev-1");
   * NULL: "token". */
  const char *subject;
  /* The decoded sr must equal this, ignoring ASCII case; NULL: any. */
  const char *resource;
  /* A token that names a key (skn) must name this one; NULL: any. */
  const char *key_name;
  int64_t now_unix;
  int64_t clock_skew_s;   /* accepted until expiry + clock_skew_s */
  int64_t max_lifetime_s; /* refused when expiry - now exceeds it; 0: no limit */
};

struct provd_attest_result; /* attest.h */
struct provd_alloc_result;  /* alloc.h */

struct provd_host_api {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor;

  /* Logging, tagged with the instance id and the call's trace id (call may
   * be NULL).  Never log secrets. */
  void (*log)(struct provd_instance *inst, struct provd_call *call,
              int level, const char *fmt, ...)
      __attribute__((format(printf, 4, 5)));
  int (*log_enabled)(struct provd_instance *inst, int level);

  /* Errors: a stable reason code (e.g. "BAD_SIGNATURE") plus human text. */
  void (*err_set)(struct provd_err *err, const char *reason_code,
                  const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));
  const char *(*strstatus)(int status);

  /* Read-only config and record nodes (options, enrollments, request
   * bodies).  Return PROVD_OK, PROVD_NOT_FOUND when the key is absent, or
   * PROVD_E_INVAL when the value has another type.  Durations are read
   * with cfg_int (already converted to ms), sizes likewise (bytes). */
  int (*cfg_str)(const struct provd_cfg *c, const char *key,
                 const char **out);
  int (*cfg_int)(const struct provd_cfg *c, const char *key, int64_t *out);
  int (*cfg_bool)(const struct provd_cfg *c, const char *key, int *out);
  int (*cfg_double)(const struct provd_cfg *c, const char *key,
                    double *out);
  int (*cfg_child)(const struct provd_cfg *c, const char *key,
                   const struct provd_cfg **out);
  size_t (*cfg_count)(const struct provd_cfg *c); /* sequence length */
  int (*cfg_at)(const struct provd_cfg *c, size_t i,
                const struct provd_cfg **out);
  /* The scalar text of a node itself (sequence items), or NULL. */
  const char *(*cfg_text)(const struct provd_cfg *c);

  /* Time. */
  uint64_t (*mono_ns)(void);
  int64_t (*unix_ms)(void);

  /* Cryptographically secure random bytes. */
  int (*random)(uint8_t *buf, size_t len);

  /* Metrics: a counter named provd_plugin_<name>, labelled with the
   * instance id. */
  void (*counter_add)(struct provd_instance *inst, const char *name,
                      const char *help, double value);

  /* Calls. */
  const char *(*call_trace_id)(const struct provd_call *call);
  uint64_t (*call_deadline_ns)(const struct provd_call *call);

  /* Blocking outbound HTTP(S) with the host's TLS settings.  Ops run on
   * worker threads, never on an event loop, so blocking here is allowed;
   * lifecycle functions must not call it.  Returns PROVD_OK when a
   * response arrived (any status), PROVD_E_TIMEOUT or
   * PROVD_E_UNAVAILABLE otherwise. */
  int (*http_request)(struct provd_instance *inst, struct provd_call *call,
                      const struct provd_http_req *req,
                      struct provd_http_resp *resp);

  /* Result builders (the host copies what it is given). */
  int (*attest_set_device_id)(struct provd_attest_result *r,
                              const char *device_id);
  int (*attest_add_claim)(struct provd_attest_result *r, const char *key,
                          const char *value);
  int (*attest_set_challenge)(struct provd_attest_result *r,
                              const char *challenge_json,
                              const uint8_t *session, size_t session_len);
  int (*alloc_set_hub)(struct provd_alloc_result *r, const char *hub_name,
                       const char *reason);

  /* ---- ABI minor 1: codecs, HMAC-SHA256 and SAS tokens ----
   * Test for them with PROVD_HAS(host, struct provd_host_api, sas_verify)
   * or set min_host_minor = 1.  Output buffers are the caller's, with
   * their capacity; nothing is allocated.  `err` may be NULL.  On failure
   * they return PROVD_E_INVAL and set one of the reason codes
   * BAD_ARGUMENT, INPUT_TOO_LONG, BUFFER_TOO_SMALL, MALFORMED_BASE64,
   * MALFORMED_TOKEN (see each function). */

  /* Base64, RFC 4648 standard alphabet with padding.  Encode writes
   * 4 * ceil(in_len / 3) characters and a NUL (*out_len, if not NULL, gets
   * the characters); in_len <= 1 MiB.  Decode is strict (only what an
   * encoder produces: no whitespace, canonical padding; MALFORMED_BASE64
   * otherwise) and reads exactly in_len characters (<= 4 MiB). */
  int (*b64_encode)(const uint8_t *in, size_t in_len, char *out,
                    size_t out_cap, size_t *out_len, struct provd_err *err);
  int (*b64_decode)(const char *in, size_t in_len, uint8_t *out,
                    size_t out_cap, size_t *out_len, struct provd_err *err);

  /* HMAC-SHA256 of msg (<= 1 MiB) under key (<= 1 KiB) into out
   * (out_cap >= PROVD_HMAC_SHA256_LEN). */
  int (*hmac_sha256)(const uint8_t *key, size_t key_len, const uint8_t *msg,
                     size_t msg_len, uint8_t *out, size_t out_cap,
                     struct provd_err *err);

  /* Parses a SAS token into *out, its strings stored in buf (buf_cap >=
   * 2 * (strlen(text) + 1); PROVD_SAS_BUF_SIZE always fits).  Field names
   * are case-insensitive, in any order; unknown fields are ignored, a
   * repeated one is refused.  MALFORMED_TOKEN when it does not parse. */
  int (*sas_parse)(const char *text, char *buf, size_t buf_cap,
                   struct provd_sas_token *out, struct provd_err *err);
  /* Checks a parsed token against a policy.  PROVD_OK, or PROVD_DENIED
   * with TOKEN_RESOURCE_MISMATCH, BAD_KEY_NAME, TOKEN_EXPIRED or
   * TOKEN_LIFETIME_TOO_LONG. */
  int (*sas_check)(const struct provd_sas_token *tok,
                   const struct provd_sas_policy *policy,
                   struct provd_err *err);
  /* PROVD_OK when `key` (raw bytes) signed the token, compared in
   * constant time; PROVD_DENIED with BAD_SIGNATURE when it did not. */
  int (*sas_verify)(const struct provd_sas_token *tok, const uint8_t *key,
                    size_t key_len, struct provd_err *err);

  /* Attestation result, ABI minor 1: the credential presented with this
   * request (its Authorization bytes, or its TLS client chain when it has
   * none) proves this device until unix_s, so the host may answer this
   * operation's status polls that present the byte-identical credential
   * before then without calling attest() again.  Not called: every poll
   * is attested.  PROVD_E_INVAL when unix_s <= 0. */
  int (*attest_set_reuse_until)(struct provd_attest_result *r,
                                int64_t unix_s);

  /* ---- ABI minor 2: attestation details for the answer ----
   * Test for them with PROVD_HAS(host, struct provd_host_api,
   * attest_set_match_depth) or set min_host_minor = 2. */

  /* registrationState.<key> of the device's answer (and of the stored
   * registration): a JSON object, at most 16 KiB.  key is the DPS field of
   * the mechanism: "x509", "tpm" or "symmetricKey"; PROVD_E_INVAL for any
   * other key or text that is not a JSON object. */
  int (*attest_set_state)(struct provd_attest_result *r, const char *key,
                          const char *object_json);
  /* For a group candidate: how far up the device's chain of trust the
   * group's anchor sits (1: it issued the leaf, 2: the next one up, ...).
   * When several groups accept a device the core keeps the smallest depth
   * (DPS: the most specific group wins), ties going to the first group in
   * id order.  Not called: the first group that accepts wins.
   * PROVD_E_INVAL when depth is 0. */
  int (*attest_set_match_depth)(struct provd_attest_result *r,
                                uint32_t depth);

  /* ---- ABI minor 3 ----
   * Notifiers: the receiver asked to be left alone for ms milliseconds
   * (HTTP Retry-After) before the event is tried again; the host waits at
   * least that long, capped at one hour.  PROVD_E_INVAL for ms < 0. */
  int (*call_set_retry_after)(struct provd_call *call, int64_t ms);

  /* ---- ABI minor 5: allocation results beyond the hub ----
   * Test for them with PROVD_HAS(host, struct provd_host_api,
   * alloc_delegate) or set min_host_minor = 5. */

  /* Hands the choice to the allocation policy `policy` (another plugin's
   * provd_alloc_ops.policy), over the named candidates (names or host
   * names; n_hubs 0: all of this request's candidates).  `why` shows in
   * explain output and logs ("unknown region", "webhook timed out").  The
   * host runs that policy once; its own delegation is not followed.
   * Return PROVD_OK from allocate() after calling it. */
  int (*alloc_delegate)(struct provd_alloc_result *r, const char *policy,
                        const char *const *hub_names, size_t n_hubs,
                        const char *why);
  /* Registration data chosen with the hub (DPS AllocationResponse):
   * key "initialTwin" (a JSON object: tags, properties.desired) or
   * "payload" (any JSON value, returned to the device as
   * registrationState.payload); at most 16 KiB.  PROVD_E_INVAL for any
   * other key or text that is not JSON of that shape. */
  int (*alloc_set_data)(struct provd_alloc_result *r, const char *key,
                        const char *json);

  /* ---- ABI minor 9: a device key made by attestation ----
   * Test with PROVD_HAS(host, struct provd_host_api, attest_set_hub_key)
   * or set min_host_minor = 9. */

  /* The key the device's hub identity gets (IoT Hub's symmetric primary
   * key; key_len 16..64 bytes), for a mechanism whose enrollment holds
   * none: TPM, whose device imported this key into its TPM and signs its
   * hub tokens with it there.  The host keeps it with the registration,
   * never shows it (service API, device answers, events) and hands it to
   * hub connectors as provd_device.symmetric_key.  Used when the answer
   * assigns the device; PROVD_E_INVAL for a length out of range. */
  int (*attest_set_hub_key)(struct provd_attest_result *r,
                            const uint8_t *key, size_t key_len);
  /* Later additions go here, after the ABI minor 9 members; test for them
   * with PROVD_HAS(host, ...). */
};

#ifdef __cplusplus
}
#endif
#endif /* PROVD_HOST_H */
