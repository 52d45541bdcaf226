/* Host services of ABI minor 1: base64, HMAC-SHA256 and SAS tokens, so
 * that plugins verify tokens with the same code as the rest of provd
 * instead of linking a copy of it.  Thin wrappers over util/b64.c and
 * util/sas.c that check sizes and turn failures into reason codes. */
#include "plugin/loader_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "provd/host.h"
#include "util/b64.h"
#include "util/hmac.h"
#include "util/sas.h"
#include "util/url.h"

#define HOST_B64_MAX_ENCODE (1024 * 1024)
#define HOST_B64_MAX_DECODE (4 * 1024 * 1024)
#define HOST_HMAC_MAX_KEY 1024
#define HOST_HMAC_MAX_MSG (1024 * 1024)

static int invalid(struct provd_err *err, const char *reason,
                   const char *what)
{
  perr_set(err, reason, "%s", what);
  return PROVD_E_INVAL;
}

/* ---- base64 and HMAC ---- */

int host_b64_encode(const uint8_t *in, size_t in_len, char *out,
                    size_t out_cap, size_t *out_len, struct provd_err *err)
{
  if ((!in && in_len) || !out)
    return invalid(err, "BAD_ARGUMENT", "b64_encode: no input or output");
  if (in_len > HOST_B64_MAX_ENCODE)
    return invalid(err, "INPUT_TOO_LONG", "b64_encode: input above 1 MiB");
  if (b64_encode_to(in, in_len, out, out_cap, out_len) != 0)
    return invalid(err, "BUFFER_TOO_SMALL",
                   "b64_encode: output buffer too small");
  return PROVD_OK;
}

int host_b64_decode(const char *in, size_t in_len, uint8_t *out,
                    size_t out_cap, size_t *out_len, struct provd_err *err)
{
  if ((!in && in_len) || !out_len)
    return invalid(err, "BAD_ARGUMENT", "b64_decode: no input or length");
  if (in_len > HOST_B64_MAX_DECODE)
    return invalid(err, "INPUT_TOO_LONG", "b64_decode: input above 4 MiB");
  int rc = b64_decode_n(in, in_len, out, out_cap, out_len);
  if (rc == B64_TOO_SMALL)
    return invalid(err, "BUFFER_TOO_SMALL",
                   "b64_decode: output buffer too small");
  if (rc != 0)
    return invalid(err, "MALFORMED_BASE64",
                   "b64_decode: not canonical padded base64");
  return PROVD_OK;
}

int host_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg,
                     size_t msg_len, uint8_t *out, size_t out_cap,
                     struct provd_err *err)
{
  if ((!key && key_len) || (!msg && msg_len) || !out)
    return invalid(err, "BAD_ARGUMENT", "hmac_sha256: missing argument");
  if (key_len > HOST_HMAC_MAX_KEY || msg_len > HOST_HMAC_MAX_MSG)
    return invalid(err, "INPUT_TOO_LONG",
                   "hmac_sha256: key above 1 KiB or message above 1 MiB");
  if (out_cap < PROVD_HMAC_SHA256_LEN)
    return invalid(err, "BUFFER_TOO_SMALL",
                   "hmac_sha256: output below 32 bytes");
  if (hmac_sha256(key, key_len, msg, msg_len, out) != 0) {
    perr_set(err, "INTERNAL", "hmac_sha256: OpenSSL failed");
    return PROVD_E_INTERNAL;
  }
  return PROVD_OK;
}

/* ---- SAS tokens ---- */

/* Appends s (NUL included) at *cursor; NULL when it does not fit. */
static const char *buf_put(char **cursor, size_t *left, const char *s)
{
  size_t n = strlen(s) + 1;
  if (n > *left)
    return NULL;
  char *at = memcpy(*cursor, s, n);
  *cursor += n;
  *left -= n;
  return at;
}

/* The percent-decoded sr at *cursor (sas_parse has checked it decodes). */
static const char *buf_put_decoded(char **cursor, size_t *left,
                                   const char *raw)
{
  if (url_decode(raw, strlen(raw), *cursor, *left) != 0)
    return NULL;
  const char *at = *cursor;
  size_t n = strlen(at) + 1;
  *cursor += n;
  *left -= n;
  return at;
}

static int token_usable(const struct provd_sas_token *t)
{
  return t && PROVD_HAS(t, struct provd_sas_token, key_name) &&
         t->resource_raw && t->resource && t->signature && t->expiry_raw &&
         t->expiry >= 0;
}

int host_sas_parse(const char *text, char *buf, size_t buf_cap,
                   struct provd_sas_token *out, struct provd_err *err)
{
  if (!out || !PROVD_HAS(out, struct provd_sas_token, key_name) || !buf)
    return invalid(err, "BAD_ARGUMENT",
                   "sas_parse: no buffer, or token struct_size too small");
  uint32_t size = out->struct_size;
  memset(out, 0, size);
  out->struct_size = size;
  struct sas_token t; /* 4 KiB on the worker stack: no allocation */
  if (sas_parse(text, &t, err) != 0)
    return PROVD_E_INVAL;
  char *cursor = buf;
  size_t left = buf_cap;
  const char *sr_raw = buf_put(&cursor, &left, t.sr_raw);
  const char *sr = buf_put_decoded(&cursor, &left, t.sr_raw);
  const char *sig = buf_put(&cursor, &left, t.sig);
  const char *se_raw = buf_put(&cursor, &left, t.se_raw);
  const char *skn = t.skn ? buf_put(&cursor, &left, t.skn) : NULL;
  if (!sr_raw || !sr || !sig || !se_raw || (t.skn && !skn))
    return invalid(err, "BUFFER_TOO_SMALL",
                   "sas_parse: buffer below 2 * (token length + 1)");
  out->resource_raw = sr_raw;
  out->resource = sr;
  out->signature = sig;
  out->expiry_raw = se_raw;
  out->expiry = t.se;
  out->key_name = skn;
  return PROVD_OK;
}

static int denied(struct provd_err *err, const char *reason, const char *fmt,
                  ...) __attribute__((format(printf, 3, 4)));
static int denied(struct provd_err *err, const char *reason, const char *fmt,
                  ...)
{
  va_list ap;
  va_start(ap, fmt);
  perr_vset(err, reason, fmt, ap);
  va_end(ap);
  return PROVD_DENIED;
}

int host_sas_check(const struct provd_sas_token *tok,
                   const struct provd_sas_policy *policy,
                   struct provd_err *err)
{
  if (!token_usable(tok) || !policy ||
      !PROVD_HAS(policy, struct provd_sas_policy, max_lifetime_s) ||
      policy->now_unix < 0 || policy->max_lifetime_s < 0)
    return invalid(err, "BAD_ARGUMENT",
                   "sas_check: no token or policy, or a negative time");
  const char *who = policy->subject ? policy->subject : "token";
  if (policy->resource && strcasecmp(tok->resource, policy->resource) != 0)
    return denied(err, "TOKEN_RESOURCE_MISMATCH",
                  "%s: token is not for %s", who, policy->resource);
  if (policy->key_name && tok->key_name &&
      strcmp(tok->key_name, policy->key_name) != 0)
    return denied(err, "BAD_KEY_NAME", "%s: token key name is not '%s'",
                  who, policy->key_name);
  if (sas_expiry_passed(tok->expiry, policy->now_unix, policy->clock_skew_s))
    return denied(err, "TOKEN_EXPIRED",
                  "%s: token expired at %" PRId64 " (now %" PRId64
                  ", clock skew %" PRId64 " s)",
                  who, tok->expiry, policy->now_unix, policy->clock_skew_s);
  if (policy->max_lifetime_s > 0 &&
      tok->expiry - policy->now_unix > policy->max_lifetime_s)
    return denied(err, "TOKEN_LIFETIME_TOO_LONG",
                  "%s: token expires at %" PRId64 ", more than %" PRId64
                  " s after now (%" PRId64 ")",
                  who, tok->expiry, policy->max_lifetime_s,
                  policy->now_unix);
  return PROVD_OK;
}

int host_sas_verify(const struct provd_sas_token *tok, const uint8_t *key,
                    size_t key_len, struct provd_err *err)
{
  if (!token_usable(tok) || (!key && key_len))
    return invalid(err, "BAD_ARGUMENT", "sas_verify: no token or key");
  if (key_len > HOST_HMAC_MAX_KEY)
    return invalid(err, "INPUT_TOO_LONG", "sas_verify: key above 1 KiB");
  if (!sas_signature_matches(tok->resource_raw, tok->expiry_raw,
                             tok->signature, key, key_len))
    return denied(err, "BAD_SIGNATURE", "token not signed by this key");
  return PROVD_OK;
}
