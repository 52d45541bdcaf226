/* symmetric-key attestation: checks a device's SharedAccessSignature token
 * against the primary / secondary key of its enrollment (individual) or
 * against the device keys derived from the group keys (enrollment group).
 * See docs/plugins/symmetric-key.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "provd/attest.h"
#include "provd/host.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define SYMKEY_MAX_KEY 256        /* decoded key bytes; DPS uses 16..64 */
#define SYMKEY_MAX_GROUP_KEY 1024 /* decoded group key bytes */
#define SYMKEY_MAX_SKEW_MS (24LL * 3600 * 1000)
#define SYMKEY_MAX_LIFETIME_MS (100LL * 365 * 24 * 3600 * 1000)

struct symkey {
  const struct provd_host_api *host; /* borrowed until destroy */
  struct provd_instance *inst;
  int64_t skew_s;         /* tokens are accepted until se + skew_s */
  int64_t max_lifetime_s; /* 0: no limit on se - now */
};

/* ---- lifecycle ---- */

static int symkey_create(const struct provd_host_api *host,
                         struct provd_instance *inst, void **state,
                         struct provd_err *err)
{
  struct symkey *sk = calloc(1, sizeof(*sk));
  if (!sk) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  sk->host = host;
  sk->inst = inst;
  sk->skew_s = 300;
  sk->max_lifetime_s = 0;
  *state = sk;
  return PROVD_OK;
}

/* A DURATION option in ms; def_ms when absent (the host normally fills
 * in the schema default). */
static int symkey_duration(const struct symkey *sk,
                           const struct provd_cfg *opts, const char *name,
                           int64_t def_ms, int64_t max_ms, int64_t *out,
                           struct provd_err *err)
{
  int64_t ms = def_ms;
  int rc = opts ? sk->host->cfg_int(opts, name, &ms) : PROVD_NOT_FOUND;
  if (rc == PROVD_NOT_FOUND)
    ms = def_ms;
  else if (rc != PROVD_OK) {
    sk->host->err_set(err, "BAD_OPTION", "%s: not a duration", name);
    return PROVD_E_CONFIG;
  }
  if (ms < 0 || ms > max_ms) {
    sk->host->err_set(err, "BAD_OPTION",
                      "%s: %" PRId64 " ms is outside 0..%" PRId64 " ms",
                      name, ms, max_ms);
    return PROVD_E_CONFIG;
  }
  *out = ms;
  return PROVD_OK;
}

static int symkey_configure(void *state, const struct provd_cfg *opts,
                            struct provd_err *err)
{
  struct symkey *sk = state;
  int64_t skew_ms, life_ms;
  int rc = symkey_duration(sk, opts, "clock_skew", 300000,
                           SYMKEY_MAX_SKEW_MS, &skew_ms, err);
  if (rc == PROVD_OK)
    rc = symkey_duration(sk, opts, "max_token_lifetime", 0,
                         SYMKEY_MAX_LIFETIME_MS, &life_ms, err);
  if (rc != PROVD_OK)
    return rc;
  /* Tokens carry whole seconds: the skew rounds down (never more lenient
   * than asked), a non-zero lifetime rounds up (never 0 = unlimited). */
  sk->skew_s = skew_ms / 1000;
  sk->max_lifetime_s = (life_ms + 999) / 1000;
  return PROVD_OK;
}

static void symkey_destroy(void *state)
{
  free(state);
}

/* ---- the token itself (same answer for every candidate enrollment) ---- */

/* A parsed token and the buffer its strings live in. */
struct symkey_token {
  struct provd_sas_token sas;
  char buf[PROVD_SAS_BUF_SIZE];
};

static int symkey_check_token(const struct symkey *sk,
                              const struct provd_attest_request *req,
                              struct symkey_token *tok,
                              struct provd_err *err)
{
  const struct provd_host_api *h = sk->host;
  if (!req->authorization || !*req->authorization) {
    h->err_set(err, "MISSING_TOKEN", "registration %s sent no SAS token",
               req->registration_id);
    return PROVD_DENIED;
  }
  tok->sas.struct_size = sizeof(tok->sas);
  if (h->sas_parse(req->authorization, tok->buf, sizeof(tok->buf),
                   &tok->sas, err) != PROVD_OK)
    return PROVD_DENIED; /* MALFORMED_TOKEN */
  char subject[160], resource[PROVD_SAS_MAX_TOKEN];
  snprintf(subject, sizeof(subject), "registration %s",
           req->registration_id);
  int n = snprintf(resource, sizeof(resource), "%s/registrations/%s",
                   req->id_scope, req->registration_id);
  if (n < 0 || (size_t)n >= sizeof(resource)) {
    h->err_set(err, "TOKEN_RESOURCE_MISMATCH",
               "registration %s: id scope and registration id too long",
               req->registration_id);
    return PROVD_DENIED;
  }
  const struct provd_sas_policy policy = {
      .struct_size = sizeof(policy),
      .subject = subject,
      .resource = resource,
      .key_name = "registration",
      .now_unix = req->now_unix,
      .clock_skew_s = sk->skew_s,
      .max_lifetime_s = sk->max_lifetime_s,
  };
  return h->sas_check(&tok->sas, &policy, err);
}

/* ---- the keys of the enrollment ---- */

/* attestation.symmetricKey.<name>, or NULL when absent or empty. */
static const char *symkey_enrollment_key(const struct symkey *sk,
                                         const struct provd_cfg *enrollment,
                                         const char *name)
{
  const struct provd_host_api *h = sk->host;
  const struct provd_cfg *att = NULL, *sym = NULL;
  const char *key = NULL;
  if (!enrollment || h->cfg_child(enrollment, "attestation", &att) != 0 ||
      h->cfg_child(att, "symmetricKey", &sym) != 0 ||
      h->cfg_str(sym, name, &key) != 0 || !key || !*key)
    return NULL;
  return key;
}

/* The raw device key for one enrollment key: the key itself for an
 * individual enrollment, HMAC(groupKey, registrationId) for a group.
 * PROVD_OK, or an error when the stored key is not valid base64. */
static int symkey_device_key(const struct symkey *sk, const char *key_b64,
                             int is_group, const char *registration_id,
                             uint8_t *out, size_t *out_len)
{
  const struct provd_host_api *h = sk->host;
  if (!is_group)
    return h->b64_decode(key_b64, strlen(key_b64), out, SYMKEY_MAX_KEY,
                         out_len, NULL);
  uint8_t group_key[SYMKEY_MAX_GROUP_KEY];
  size_t group_len = 0;
  int rc = h->b64_decode(key_b64, strlen(key_b64), group_key,
                         sizeof(group_key), &group_len, NULL);
  if (rc == PROVD_OK && group_len == 0)
    rc = PROVD_E_INVAL;
  if (rc == PROVD_OK)
    rc = h->hmac_sha256(group_key, group_len,
                        (const uint8_t *)registration_id,
                        strlen(registration_id), out, SYMKEY_MAX_KEY, NULL);
  if (rc == PROVD_OK)
    *out_len = PROVD_HMAC_SHA256_LEN;
  OPENSSL_cleanse(group_key, sizeof(group_key));
  return rc;
}

/* PROVD_OK on a match, PROVD_DECLINED when the key did not sign the
 * token, PROVD_E_CONFIG when the stored key is unusable. */
static int symkey_try_key(const struct symkey *sk, struct provd_call *call,
                          const struct provd_attest_request *req,
                          const struct provd_sas_token *tok,
                          const char *which)
{
  const char *key_b64 = symkey_enrollment_key(sk, req->enrollment, which);
  if (!key_b64)
    return PROVD_NOT_FOUND;
  uint8_t key[SYMKEY_MAX_KEY];
  size_t key_len = 0;
  int rc;
  if (symkey_device_key(sk, key_b64, req->is_group, req->registration_id,
                        key, &key_len) != PROVD_OK || key_len == 0) {
    sk->host->log(sk->inst, call, PROVD_LOG_WARN,
                  "enrollment %s: attestation.symmetricKey.%s is not "
                  "valid base64 (or longer than %d bytes); skipped",
                  req->enrollment_id ? req->enrollment_id : "?", which,
                  SYMKEY_MAX_KEY);
    rc = PROVD_E_CONFIG;
  } else {
    rc = sk->host->sas_verify(tok, key, key_len, NULL) == PROVD_OK
             ? PROVD_OK
             : PROVD_DECLINED;
  }
  OPENSSL_cleanse(key, sizeof(key));
  return rc;
}

static int symkey_check_keys(const struct symkey *sk,
                             struct provd_call *call,
                             const struct provd_attest_request *req,
                             const struct provd_sas_token *tok,
                             struct provd_err *err)
{
  static const char *const which[] = {"primaryKey", "secondaryKey"};
  const struct provd_host_api *h = sk->host;
  const char *eid = req->enrollment_id ? req->enrollment_id : "?";
  int usable = 0;
  for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
    int rc = symkey_try_key(sk, call, req, tok, which[i]);
    if (rc == PROVD_OK) {
      if (h->log_enabled(sk->inst, PROVD_LOG_DEBUG))
        h->log(sk->inst, call, PROVD_LOG_DEBUG,
               "registration %s: signed with %s of %s %s",
               req->registration_id, which[i],
               req->is_group ? "group" : "enrollment", eid);
      return PROVD_OK;
    }
    if (rc == PROVD_DECLINED)
      usable++;
  }
  if (usable == 0) {
    h->err_set(err, "INTERNAL",
               "%s %s has no usable attestation.symmetricKey.primaryKey "
               "or secondaryKey",
               req->is_group ? "enrollment group" : "enrollment", eid);
    return PROVD_E_CONFIG;
  }
  h->err_set(err, "BAD_SIGNATURE",
             "registration %s: token not signed by a key of %s %s",
             req->registration_id, req->is_group ? "group" : "enrollment",
             eid);
  /* A group that does not know the device is not a verdict: the core
   * asks the next candidate group and reports BAD_SIGNATURE itself when
   * none accepts. */
  return req->is_group ? PROVD_DECLINED : PROVD_DENIED;
}

/* ---- the op ---- */

static int symkey_attest(void *state, struct provd_call *call,
                         const struct provd_attest_request *req,
                         struct provd_attest_result *res,
                         struct provd_err *err)
{
  struct symkey *sk = state; /* device id: the registration id */
  if (!req || !req->id_scope || !req->registration_id) {
    sk->host->err_set(err, "INTERNAL",
                      "attest: request without id scope or registration id");
    return PROVD_E_INVAL;
  }
  struct symkey_token tok; /* 8 KiB on the worker stack: no allocation */
  int rc = symkey_check_token(sk, req, &tok, err);
  if (rc == PROVD_OK)
    rc = symkey_check_keys(sk, call, req, &tok.sas, err);
  /* The token proves the device until it expires: polls that present it
   * again need not be verified again. */
  if (rc == PROVD_OK)
    sk->host->attest_set_reuse_until(res, tok.sas.expiry + sk->skew_s);
  return rc;
}

/* ---- descriptor ---- */

/* Keep docs/plugins/symmetric-key.md in sync (tests/unit/test_plugin_docs.c checks it). */
static const struct provd_option symkey_options[] = {
    {"clock_skew", PROVD_OPT_DURATION, "5m", 0,
     "How long after its expiry (se) a token is still accepted.", NULL},
    {"max_token_lifetime", PROVD_OPT_DURATION, "0", 0,
     "Reject tokens whose expiry is further than this in the future; "
     "0 means no limit.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle symkey_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = symkey_create,
    .configure = symkey_configure,
    .destroy = symkey_destroy,
};

static const char *const symkey_mechanisms[] = {"symmetricKey", NULL};

static const struct provd_attest_ops symkey_ops = {
    .struct_size = sizeof(struct provd_attest_ops),
    .mechanisms = symkey_mechanisms,
    .attest = symkey_attest,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ATTESTATION,
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 1, /* b64_decode, hmac_sha256, sas_*,
                            attest_set_reuse_until */
    .name = "symmetric-key",
    .version = PROVD_VERSION,
    .description = "DPS symmetric-key attestation (SAS tokens, individual "
                   "and group keys)",
    .vendor = "provd",
    .options = symkey_options,
    .lifecycle = &symkey_lifecycle,
    .ops = &symkey_ops,
};
