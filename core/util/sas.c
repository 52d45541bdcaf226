/* SharedAccessSignature tokens.
 *
 * The signature covers the `sr` value exactly as it appears in the token:
 * Node sends it unencoded, the C SDK with lowercase `%2f`, TPM clients with
 * `%2F`, as captured from each SDK.  So sr is never normalised
 * before the MAC; it is decoded only to compare it with the resource. */
#include "util/sas.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/b64.h"
#include "util/hmac.h"
#include "util/url.h"

#define SAS_PREFIX "SharedAccessSignature "
#define SAS_MAX_FIELDS 16   /* a real token has 3 or 4 */
#define SAS_MAC_LEN 32      /* HMAC-SHA256 */
#define SAS_MAX_KEY 1024    /* decoded key bytes we accept (DPS: 16..64) */
#define SAS_MAX_SE_DIGITS 18 /* keeps se far from int64 overflow */

/* ---- parsing ---- */

/* se: 1..SAS_MAX_SE_DIGITS ASCII digits, nothing else. */
static int parse_se(const char *s, int64_t *out)
{
  size_t n = strlen(s);
  if (n == 0 || n > SAS_MAX_SE_DIGITS)
    return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

struct sas_fields {
  char *sr, *sig, *se, *skn;
};

/* Points the matching slot at value; -1 (with err) on a duplicate. */
static int sas_take_field(struct sas_fields *f, const char *name,
                          char *value, struct provd_err *err)
{
  char **slot = NULL;
  if (strcasecmp(name, "sr") == 0)
    slot = &f->sr;
  else if (strcasecmp(name, "sig") == 0)
    slot = &f->sig;
  else if (strcasecmp(name, "se") == 0)
    slot = &f->se;
  else if (strcasecmp(name, "skn") == 0)
    slot = &f->skn;
  if (!slot)
    return 0; /* unknown fields are ignored, as DPS does */
  if (*slot) {
    perr_set(err, "MALFORMED_TOKEN", "token has field '%s' twice", name);
    return -1;
  }
  *slot = value;
  return 0;
}

/* Splits buf ("a=1&b=2") in place into the known fields. */
static int sas_split(char *buf, struct sas_fields *f, struct provd_err *err)
{
  char *p = buf;
  for (int count = 0;; count++) {
    if (count == SAS_MAX_FIELDS) {
      perr_set(err, "MALFORMED_TOKEN", "token has more than %d fields",
               SAS_MAX_FIELDS);
      return -1;
    }
    char *amp = strchr(p, '&');
    if (amp)
      *amp = '\0';
    char *eq = strchr(p, '=');
    if (!eq || eq == p) {
      perr_set(err, "MALFORMED_TOKEN", "token field %d is not name=value",
               count + 1);
      return -1;
    }
    *eq = '\0';
    if (sas_take_field(f, p, eq + 1, err) != 0)
      return -1;
    if (!amp)
      return 0;
    p = amp + 1;
  }
}

static int sas_require(const char *value, const char *name,
                       struct provd_err *err)
{
  if (value && *value)
    return 0;
  perr_set(err, "MALFORMED_TOKEN", "token has no %s", name);
  return -1;
}

/* Decodes a field in place; -1 (with err) on a bad escape. */
static int sas_decode_in_place(char *value, const char *name,
                               struct provd_err *err)
{
  size_t n = strlen(value);
  if (url_decode(value, n, value, n + 1) < 0) {
    perr_set(err, "MALFORMED_TOKEN", "token field %s has a bad %%-escape",
             name);
    return -1;
  }
  return 0;
}

/* sr stays raw, but it must still decode (sas_resource_is decodes it). */
static int sas_check_sr(const char *sr, struct provd_err *err)
{
  char scratch[SAS_MAX_TOKEN];
  if (url_decode(sr, strlen(sr), scratch, sizeof(scratch)) < 0) {
    perr_set(err, "MALFORMED_TOKEN", "token field sr has a bad %%-escape");
    return -1;
  }
  return 0;
}

int sas_parse(const char *text, struct sas_token *out, struct provd_err *err)
{
  static const size_t prefix_len = sizeof(SAS_PREFIX) - 1;
  if (!out) {
    perr_set(err, "MALFORMED_TOKEN", "no output for the token");
    return -1;
  }
  memset(out, 0, sizeof(*out));
  if (!text) {
    perr_set(err, "MALFORMED_TOKEN", "no token");
    return -1;
  }
  size_t n = strnlen(text, SAS_MAX_TOKEN);
  if (n >= SAS_MAX_TOKEN) {
    perr_set(err, "MALFORMED_TOKEN", "token longer than %d bytes",
             SAS_MAX_TOKEN - 1);
    return -1;
  }
  if (n < prefix_len || memcmp(text, SAS_PREFIX, prefix_len) != 0) {
    perr_set(err, "MALFORMED_TOKEN",
             "token does not start with 'SharedAccessSignature '");
    return -1;
  }
  memcpy(out->buf, text + prefix_len, n - prefix_len + 1);

  struct sas_fields f = {0};
  if (sas_split(out->buf, &f, err) != 0 ||
      sas_require(f.sr, "sr", err) != 0 ||
      sas_require(f.sig, "sig", err) != 0 ||
      sas_require(f.se, "se", err) != 0 || sas_check_sr(f.sr, err) != 0 ||
      sas_decode_in_place(f.sig, "sig", err) != 0 ||
      (f.skn && sas_decode_in_place(f.skn, "skn", err) != 0))
    goto fail;
  if (parse_se(f.se, &out->se) != 0) {
    perr_set(err, "MALFORMED_TOKEN", "token field se is not a number");
    goto fail;
  }
  out->sr_raw = f.sr;
  out->sig = f.sig;
  out->se_raw = f.se;
  out->skn = f.skn;
  return 0;
fail:
  memset(out, 0, sizeof(*out));
  return -1;
}

/* ---- signing and checks ---- */

struct software_key {
  const uint8_t *key;
  size_t len;
};

static int sign_with_key(void *ud, const uint8_t *msg, size_t len,
                         uint8_t mac[SAS_MAC_LEN])
{
  const struct software_key *k = ud;
  return hmac_sha256(k->key, k->len, msg, len, mac);
}

/* sign(sr "\n" se), the string a SAS token signs, into mac.  -1 when it
 * does not fit or signing fails. */
static int sign_token_string(const char *sr, const char *se, sas_sign_fn sign,
                             void *ud, uint8_t mac[SAS_MAC_LEN])
{
  char msg[2 * SAS_MAX_TOKEN];
  int n = snprintf(msg, sizeof(msg), "%s\n%s", sr, se);
  if (n < 0 || (size_t)n >= sizeof(msg))
    return -1;
  return sign(ud, (const uint8_t *)msg, (size_t)n, mac);
}

/* HMAC-SHA256(key, sr "\n" se) into mac.  -1 when it does not fit. */
static int sas_mac(const char *sr, const char *se, const uint8_t *key,
                   size_t key_len, uint8_t mac[SAS_MAC_LEN])
{
  struct software_key k = {key, key_len};
  return sign_token_string(sr, se, sign_with_key, &k, mac);
}

int sas_signature_matches(const char *sr_raw, const char *se_raw,
                          const char *sig_b64, const uint8_t *key,
                          size_t key_len)
{
  if (!sr_raw || !se_raw || !sig_b64 || (!key && key_len))
    return 0;
  uint8_t given[SAS_MAC_LEN + 3];
  size_t given_len = 0;
  if (b64_decode(sig_b64, given, sizeof(given), &given_len) != 0 ||
      given_len != SAS_MAC_LEN)
    return 0;
  uint8_t expect[SAS_MAC_LEN];
  if (sas_mac(sr_raw, se_raw, key, key_len, expect) != 0)
    return 0;
  int ok = CRYPTO_memcmp(given, expect, SAS_MAC_LEN) == 0;
  OPENSSL_cleanse(expect, sizeof(expect));
  return ok;
}

int sas_signature_ok(const struct sas_token *t, const uint8_t *key,
                     size_t key_len)
{
  return t && sas_signature_matches(t->sr_raw, t->se_raw, t->sig, key,
                                    key_len);
}

int sas_resource_is(const struct sas_token *t, const char *resource)
{
  if (!t || !t->sr_raw || !resource)
    return 0;
  char decoded[SAS_MAX_TOKEN];
  if (url_decode(t->sr_raw, strlen(t->sr_raw), decoded, sizeof(decoded)) < 0)
    return 0;
  return strcasecmp(decoded, resource) == 0;
}

int sas_expiry_passed(int64_t se, int64_t now, int64_t skew_s)
{
  if (skew_s < 0)
    skew_s = 0;
  /* se < now - skew, written so that neither side can overflow: se has at
   * most 18 digits and skew is bounded by the caller's config. */
  if (skew_s > INT64_MAX / 2)
    return 0;
  return se + skew_s < now;
}

int sas_expiry_too_far(int64_t se, int64_t now, int64_t max_lifetime_s,
                       int64_t skew_s)
{
  if (max_lifetime_s < 0 || skew_s < 0 || now < 0 ||
      max_lifetime_s > INT64_MAX / 4 || skew_s > INT64_MAX / 4 ||
      now > INT64_MAX / 4)
    return 0;
  return se > now + max_lifetime_s + skew_s;
}

int sas_expired(const struct sas_token *t, int64_t now, int64_t skew_s)
{
  return !t || sas_expiry_passed(t->se, now, skew_s);
}

char *sas_build_signed(const char *resource, int64_t expiry, const char *skn,
                       sas_sign_fn sign, void *ud)
{
  if (!resource || !sign || expiry < 0)
    return NULL;
  char sr[SAS_MAX_TOKEN], se[24], sig_enc[128], skn_enc[SAS_MAX_TOKEN];
  uint8_t mac[SAS_MAC_LEN];
  snprintf(se, sizeof(se), "%" PRId64, expiry);
  if (url_encode(resource, sr, sizeof(sr)) < 0 ||
      (skn && url_encode(skn, skn_enc, sizeof(skn_enc)) < 0) ||
      sign_token_string(sr, se, sign, ud, mac) != 0)
    return NULL;
  char *sig = b64_encode(mac, sizeof(mac));
  OPENSSL_cleanse(mac, sizeof(mac));
  if (!sig)
    return NULL;
  int enc = url_encode(sig, sig_enc, sizeof(sig_enc));
  free(sig);
  if (enc < 0)
    return NULL;
  size_t cap = sizeof(SAS_PREFIX) + strlen(sr) + strlen(sig_enc) +
               strlen(se) + (skn ? strlen(skn_enc) : 0) + 32;
  char *tok = malloc(cap);
  if (!tok)
    return NULL;
  snprintf(tok, cap, SAS_PREFIX "sr=%s&sig=%s&se=%s%s%s", sr, sig_enc, se,
           skn ? "&skn=" : "", skn ? skn_enc : "");
  return tok;
}

char *sas_build(const char *resource, const uint8_t *key, size_t key_len,
                int64_t expiry, const char *skn)
{
  if (!key && key_len)
    return NULL;
  struct software_key k = {key, key_len};
  return sas_build_signed(resource, expiry, skn, sign_with_key, &k);
}

int sas_derive_device_key(const char *group_key_b64,
                          const char *registration_id, char *out,
                          size_t out_len)
{
  if (!group_key_b64 || !registration_id || !out || out_len < 45)
    return -1;
  uint8_t key[SAS_MAX_KEY];
  size_t key_len = 0;
  if (b64_decode(group_key_b64, key, sizeof(key), &key_len) != 0 ||
      key_len == 0) {
    OPENSSL_cleanse(key, sizeof(key));
    return -1;
  }
  uint8_t mac[SAS_MAC_LEN];
  int failed = hmac_sha256(key, key_len, registration_id,
                           strlen(registration_id), mac);
  OPENSSL_cleanse(key, sizeof(key));
  if (failed)
    return -1;
  char *b64 = b64_encode(mac, sizeof(mac));
  OPENSSL_cleanse(mac, sizeof(mac));
  if (!b64)
    return -1;
  size_t n = strlen(b64);
  memcpy(out, b64, n + 1); /* 44 + NUL <= out_len */
  OPENSSL_cleanse(b64, n);
  free(b64);
  return 0;
}
