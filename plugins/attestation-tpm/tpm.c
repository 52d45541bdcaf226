/* tpm attestation: the DPS TPM 2.0 challenge round.
 *
 *   first PUT, no token   -> PROVD_CHALLENGE: a fresh HMAC key wrapped for
 *                            the device's EK and SRK (tpm_blob.h); the
 *                            session bytes the core stores hold the key
 *   second PUT, SAS token -> verified with that key; the answer carries a
 *                            new blob of the same key for the hub identity
 *
 * See docs/plugins/tpm.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "provd/attest.h"
#include "provd/host.h"
#include "provd/plugin.h"
#include "tpm_blob.h"
#include "tpm_keys.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

/* base64 text of a key: 4/3 of TPM_KEY_MAX_BYTES, rounded up. */
#define TPM_KEY_MAX_B64 (4 * ((TPM_KEY_MAX_BYTES + 2) / 3))
#define TPM_BLOB_MAX_B64 (4 * ((TPM_BLOB_MAX + 2) / 3) + 1)
/* The core keeps challenges for at most 10 minutes (docs/plugins/tpm.md). */
#define TPM_MAX_CHALLENGE_MS (10LL * 60 * 1000)
#define TPM_MAX_SKEW_MS (24LL * 3600 * 1000)

/* What the core stores between the two PUTs (opaque to it). */
#define SESSION_VERSION 1
struct session {
  uint8_t version;
  int64_t expires_unix;
  uint8_t ek_digest[32];  /* SHA-256 of the EK bytes as sent */
  uint8_t srk_digest[32]; /* SHA-256 of the SRK bytes as sent */
  uint8_t key[TPM_IDENTITY_KEY_LEN];
};
#define SESSION_BYTES (1 + 8 + 32 + 32 + TPM_IDENTITY_KEY_LEN)

struct tpm_plugin {
  const struct provd_host_api *host; /* borrowed until destroy */
  struct provd_instance *inst;
  int64_t lifetime_s; /* a challenge must be answered within it */
  int64_t skew_s;     /* tokens are accepted until se + skew_s */
};

/* ---- lifecycle ---- */

static int tpm_create(const struct provd_host_api *host,
                      struct provd_instance *inst, void **state,
                      struct provd_err *err)
{
  struct tpm_plugin *t = calloc(1, sizeof(*t));
  if (!t) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  t->host = host;
  t->inst = inst;
  t->lifetime_s = 300;
  t->skew_s = 300;
  *state = t;
  return PROVD_OK;
}

static int tpm_duration(const struct tpm_plugin *t,
                        const struct provd_cfg *opts, const char *name,
                        int64_t min_ms, int64_t max_ms, int64_t *out_s,
                        struct provd_err *err)
{
  int64_t ms = *out_s * 1000;
  int rc = opts ? t->host->cfg_int(opts, name, &ms) : PROVD_NOT_FOUND;
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND) {
    t->host->err_set(err, "BAD_OPTION", "%s: not a duration", name);
    return PROVD_E_CONFIG;
  }
  if (ms < min_ms || ms > max_ms) {
    t->host->err_set(err, "BAD_OPTION",
                     "%s: %" PRId64 " ms is outside %" PRId64 "..%" PRId64
                     " ms",
                     name, ms, min_ms, max_ms);
    return PROVD_E_CONFIG;
  }
  *out_s = ms / 1000;
  return PROVD_OK;
}

static int tpm_configure(void *state, const struct provd_cfg *opts,
                         struct provd_err *err)
{
  struct tpm_plugin *t = state;
  int rc = tpm_duration(t, opts, "challenge_lifetime", 1000,
                        TPM_MAX_CHALLENGE_MS, &t->lifetime_s, err);
  if (rc == PROVD_OK)
    rc = tpm_duration(t, opts, "clock_skew", 0, TPM_MAX_SKEW_MS, &t->skew_s,
                      err);
  return rc;
}

static void tpm_destroy(void *state)
{
  free(state);
}

/* ---- session bytes ---- */

static void session_pack(const struct session *s, uint8_t out[SESSION_BYTES])
{
  out[0] = s->version;
  for (int i = 0; i < 8; i++)
    out[1 + i] = (uint8_t)((uint64_t)s->expires_unix >> (56 - 8 * i));
  memcpy(out + 9, s->ek_digest, 32);
  memcpy(out + 41, s->srk_digest, 32);
  memcpy(out + 73, s->key, TPM_IDENTITY_KEY_LEN);
}

static int session_unpack(const uint8_t *in, size_t len, struct session *s)
{
  if (!in || len != SESSION_BYTES || in[0] != SESSION_VERSION)
    return -1;
  uint64_t e = 0;
  for (int i = 0; i < 8; i++)
    e = (e << 8) | in[1 + i];
  s->version = in[0];
  s->expires_unix = (int64_t)e;
  memcpy(s->ek_digest, in + 9, 32);
  memcpy(s->srk_digest, in + 41, 32);
  memcpy(s->key, in + 73, TPM_IDENTITY_KEY_LEN);
  return 0;
}

/* ---- what the device and the enrollment hold ---- */

/* A base64 key decoded, bounded by TPM_KEY_MAX_BYTES. */
struct raw_key {
  uint8_t bytes[TPM_KEY_MAX_BYTES];
  size_t len;
};

static int decode_key(const struct tpm_plugin *t, const char *b64,
                      struct raw_key *out)
{
  size_t n = strnlen(b64, TPM_KEY_MAX_B64 + 1);
  if (n == 0 || n > TPM_KEY_MAX_B64)
    return -1;
  return t->host->b64_decode(b64, n, out->bytes, sizeof(out->bytes),
                             &out->len, NULL) == PROVD_OK
             ? 0
             : -1;
}

/* body.tpm.<name>, or NULL. */
static const char *device_field(const struct tpm_plugin *t,
                                const struct provd_cfg *body,
                                const char *name)
{
  const struct provd_cfg *tpm = NULL;
  const char *v = NULL;
  if (!body || t->host->cfg_child(body, "tpm", &tpm) != PROVD_OK ||
      t->host->cfg_str(tpm, name, &v) != PROVD_OK)
    return NULL;
  return v;
}

/* The device's EK and SRK, parsed, and their digests. */
struct device_keys {
  struct raw_key ek_raw, srk_raw;
  struct tpm_key ek, srk;
  uint8_t ek_digest[32], srk_digest[32];
  int have_srk;
};

static void device_keys_clear(struct device_keys *d)
{
  tpm_key_clear(&d->ek);
  tpm_key_clear(&d->srk);
}

static int bad_blob(const struct tpm_plugin *t,
                    const struct provd_attest_request *req, const char *what,
                    const char *why, struct provd_err *err)
{
  t->host->err_set(err, "TPM_BAD_BLOB", "registration %s: %s: %s",
                   req->registration_id, what, why);
  return PROVD_DENIED;
}

/* Reads body.tpm.endorsementKey (required) and storageRootKey (required
 * when need_srk). */
static int read_device_keys(const struct tpm_plugin *t,
                            const struct provd_attest_request *req,
                            int need_srk, struct device_keys *d,
                            struct provd_err *err)
{
  char why[128];
  const char *ek_b64 = device_field(t, req->body, "endorsementKey");
  const char *srk_b64 = device_field(t, req->body, "storageRootKey");
  if (!ek_b64 || decode_key(t, ek_b64, &d->ek_raw) != 0)
    return bad_blob(t, req, "tpm.endorsementKey", "missing or not base64",
                    err);
  if (tpm_key_parse(d->ek_raw.bytes, d->ek_raw.len, &d->ek, why,
                    sizeof(why)) != 0)
    return bad_blob(t, req, "tpm.endorsementKey", why, err);
  EVP_Digest(d->ek_raw.bytes, d->ek_raw.len, d->ek_digest, NULL,
             EVP_sha256(), NULL);
  if (!srk_b64 && !need_srk)
    return PROVD_OK;
  if (!srk_b64 || decode_key(t, srk_b64, &d->srk_raw) != 0)
    return bad_blob(t, req, "tpm.storageRootKey", "missing or not base64",
                    err);
  if (tpm_key_parse(d->srk_raw.bytes, d->srk_raw.len, &d->srk, why,
                    sizeof(why)) != 0)
    return bad_blob(t, req, "tpm.storageRootKey", why, err);
  EVP_Digest(d->srk_raw.bytes, d->srk_raw.len, d->srk_digest, NULL,
             EVP_sha256(), NULL);
  d->have_srk = 1;
  return PROVD_OK;
}

/* The enrollment's attestation.tpm.endorsementKey against the device's. */
static int check_enrolled_ek(const struct tpm_plugin *t,
                             const struct provd_attest_request *req,
                             const struct tpm_key *ek, struct provd_err *err)
{
  const struct provd_cfg *att = NULL, *tpm = NULL;
  const char *b64 = NULL;
  struct raw_key enrolled;
  if (!req->enrollment ||
      t->host->cfg_child(req->enrollment, "attestation", &att) != 0 ||
      t->host->cfg_child(att, "tpm", &tpm) != 0 ||
      t->host->cfg_str(tpm, "endorsementKey", &b64) != 0 ||
      decode_key(t, b64, &enrolled) != 0) {
    t->host->err_set(err, "INTERNAL",
                     "enrollment %s has no readable "
                     "attestation.tpm.endorsementKey",
                     req->enrollment_id ? req->enrollment_id : "?");
    return PROVD_E_CONFIG;
  }
  int same = tpm_key_matches_enrolled(ek, enrolled.bytes, enrolled.len);
  if (same == 1)
    return PROVD_OK;
  if (same < 0) {
    t->host->err_set(err, "INTERNAL",
                     "enrollment %s: attestation.tpm.endorsementKey is "
                     "not an RSA TPM2B_PUBLIC, TPMT_PUBLIC or DER key",
                     req->enrollment_id ? req->enrollment_id : "?");
    return PROVD_E_CONFIG;
  }
  t->host->err_set(err, "TPM_EK_MISMATCH",
                   "registration %s: endorsement key differs from the "
                   "enrolled one",
                   req->registration_id);
  return PROVD_DENIED;
}

/* ---- blobs ---- */

/* A fresh activation blob wrapping key for the device, as base64 into a
 * malloc'd string (caller frees), or NULL with err set. */
static char *blob_b64(const struct tpm_plugin *t,
                      const struct provd_attest_request *req,
                      const struct device_keys *d, const uint8_t *key,
                      struct provd_err *err)
{
  uint8_t blob[TPM_BLOB_MAX];
  size_t len = 0;
  char why[96];
  char *text = malloc(TPM_BLOB_MAX_B64);
  if (!text) {
    t->host->err_set(err, "INTERNAL", "out of memory");
    return NULL;
  }
  if (tpm_activation_blob(&d->ek, &d->srk, key, blob, sizeof(blob), &len,
                          why, sizeof(why)) != 0 ||
      t->host->b64_encode(blob, len, text, TPM_BLOB_MAX_B64, NULL, NULL) !=
          PROVD_OK) {
    t->host->err_set(err, "INTERNAL", "registration %s: %s",
                     req->registration_id, why);
    free(text);
    text = NULL;
  }
  OPENSSL_cleanse(blob, sizeof(blob));
  return text;
}

/* registrationState.tpm = {"authenticationKey": a fresh blob of key}. */
static int answer_state(const struct tpm_plugin *t,
                        const struct provd_attest_request *req,
                        const struct device_keys *d, const uint8_t *key,
                        struct provd_attest_result *res,
                        struct provd_err *err)
{
  char *blob = blob_b64(t, req, d, key, err);
  char *json = NULL;
  int rc = PROVD_E_INTERNAL;
  if (blob && asprintf(&json, "{\"authenticationKey\":\"%s\"}", blob) >= 0)
    rc = t->host->attest_set_state(res, "tpm", json);
  if (rc != PROVD_OK && blob)
    t->host->err_set(err, "INTERNAL", "registration %s: state refused",
                     req->registration_id);
  free(blob);
  free(json);
  return rc;
}

/* ---- the two rounds ---- */

static int issue_challenge(const struct tpm_plugin *t,
                           const struct provd_attest_request *req,
                           const struct device_keys *d,
                           struct provd_attest_result *res,
                           struct provd_err *err)
{
  struct session s = {.version = SESSION_VERSION,
                      .expires_unix = req->now_unix + t->lifetime_s};
  memcpy(s.ek_digest, d->ek_digest, 32);
  memcpy(s.srk_digest, d->srk_digest, 32);
  if (t->host->random(s.key, sizeof(s.key)) != PROVD_OK) {
    t->host->err_set(err, "INTERNAL", "no random bytes");
    return PROVD_E_INTERNAL;
  }
  char *blob = blob_b64(t, req, d, s.key, err);
  char *json = NULL;
  int rc = PROVD_E_INTERNAL;
  /* Base64 needs no JSON escaping; field order as DPS answers. */
  if (blob && asprintf(&json,
                       "{\"authenticationKey\":\"%s\","
                       "\"keyName\":\"registration\"}",
                       blob) >= 0) {
    uint8_t packed[SESSION_BYTES];
    session_pack(&s, packed);
    rc = t->host->attest_set_challenge(res, json, packed, sizeof(packed));
    OPENSSL_cleanse(packed, sizeof(packed));
    if (rc != PROVD_OK)
      t->host->err_set(err, "INTERNAL", "challenge refused by the host");
  } else if (blob) {
    t->host->err_set(err, "INTERNAL", "out of memory");
  }
  OPENSSL_cleanse(&s, sizeof(s));
  free(blob);
  free(json);
  return rc == PROVD_OK ? PROVD_CHALLENGE : rc;
}

/* The token must be for this registration and signed by the challenge's
 * key. */
static int check_token(const struct tpm_plugin *t,
                       const struct provd_attest_request *req,
                       const struct session *s, int64_t *expiry,
                       struct provd_err *err)
{
  const struct provd_host_api *h = t->host;
  struct provd_sas_token tok = {.struct_size = sizeof(tok)};
  char buf[PROVD_SAS_BUF_SIZE];
  char subject[160], resource[PROVD_SAS_MAX_TOKEN];
  snprintf(subject, sizeof(subject), "registration %s", req->registration_id);
  int n = snprintf(resource, sizeof(resource), "%s/registrations/%s",
                   req->id_scope, req->registration_id);
  if (n < 0 || (size_t)n >= sizeof(resource)) {
    h->err_set(err, "TOKEN_RESOURCE_MISMATCH", "%s: resource too long",
               subject);
    return PROVD_DENIED;
  }
  const struct provd_sas_policy policy = {
      .struct_size = sizeof(policy),
      .subject = subject,
      .resource = resource,
      .key_name = "registration",
      .now_unix = req->now_unix,
      .clock_skew_s = t->skew_s,
  };
  int rc = h->sas_parse(req->authorization, buf, sizeof(buf), &tok, err);
  if (rc == PROVD_OK)
    rc = h->sas_check(&tok, &policy, err);
  if (rc == PROVD_OK)
    rc = h->sas_verify(&tok, s->key, sizeof(s->key), err);
  if (rc == PROVD_OK)
    *expiry = tok.expiry;
  return rc == PROVD_E_INVAL ? PROVD_DENIED : rc;
}

/* The device's hub identity is created with the key its TPM now holds
 * (IoT Hub: symmetric primary key).  A host older than ABI minor 9 has no
 * place for it: the device then registers but no hub connector can let it
 * in. */
static int hand_over_hub_key(const struct tpm_plugin *t,
                             const struct provd_attest_request *req,
                             const uint8_t *key,
                             struct provd_attest_result *res,
                             struct provd_err *err)
{
  const struct provd_host_api *h = t->host;
  if (!PROVD_HAS(h, struct provd_host_api, attest_set_hub_key) ||
      !h->attest_set_hub_key)
    return PROVD_OK;
  if (h->attest_set_hub_key(res, key, TPM_IDENTITY_KEY_LEN) == PROVD_OK)
    return PROVD_OK;
  h->err_set(err, "INTERNAL", "registration %s: hub key refused",
             req->registration_id);
  return PROVD_E_INTERNAL;
}

/* Second PUT (and status polls): the token, then the challenge's state.
 * The signature is checked first so that only the device learns whether
 * its challenge expired or was used. */
static int answer_challenge(const struct tpm_plugin *t,
                            struct provd_call *call,
                            const struct provd_attest_request *req,
                            const struct device_keys *d,
                            struct provd_attest_result *res,
                            struct provd_err *err)
{
  const struct provd_host_api *h = t->host;
  struct session s;
  if (session_unpack(req->session, req->session_len, &s) != 0) {
    h->err_set(err, "TPM_CHALLENGE_EXPIRED",
               "registration %s: no open challenge (expired or never "
               "issued)",
               req->registration_id);
    return PROVD_DENIED;
  }
  int64_t expiry = 0;
  int rc = check_token(t, req, &s, &expiry, err);
  int answered = PROVD_HAS(req, struct provd_attest_request,
                           session_answered) && req->session_answered;
  if (rc != PROVD_OK) {
  } else if (req->now_unix > s.expires_unix) {
    h->err_set(err, "TPM_CHALLENGE_EXPIRED",
               "registration %s: challenge expired %" PRId64 " s ago",
               req->registration_id, req->now_unix - s.expires_unix);
    rc = PROVD_DENIED;
  } else if (answered) {
    h->err_set(err, "TPM_CHALLENGE_REPLAYED",
               "registration %s: challenge already answered",
               req->registration_id);
    rc = PROVD_DENIED;
  } else if (d->ek.rsa && CRYPTO_memcmp(d->ek_digest, s.ek_digest, 32)) {
    h->err_set(err, "TPM_EK_MISMATCH",
               "registration %s: endorsement key differs from the "
               "challenged one",
               req->registration_id);
    rc = PROVD_DENIED;
  } else if (d->have_srk && CRYPTO_memcmp(d->srk_digest, s.srk_digest, 32)) {
    h->err_set(err, "TPM_BAD_BLOB",
               "registration %s: storage root key differs from the "
               "challenged one",
               req->registration_id);
    rc = PROVD_DENIED;
  }
  if (rc == PROVD_OK && d->have_srk) {
    /* The hub identity uses the same key: wrap it once more for the
     * answer (registrationState.tpm.authenticationKey), and hand it to the
     * host for the hub connectors. */
    rc = answer_state(t, req, d, s.key, res, err);
    if (rc == PROVD_OK)
      rc = hand_over_hub_key(t, req, s.key, res, err);
  }
  if (rc == PROVD_OK) {
    h->attest_set_reuse_until(res, expiry + t->skew_s < s.expires_unix
                                       ? expiry + t->skew_s
                                       : s.expires_unix);
    if (h->log_enabled(t->inst, PROVD_LOG_DEBUG))
      h->log(t->inst, call, PROVD_LOG_DEBUG,
             "registration %s: TPM challenge answered",
             req->registration_id);
  }
  OPENSSL_cleanse(&s, sizeof(s));
  return rc;
}

static int tpm_attest(void *state, struct provd_call *call,
                      const struct provd_attest_request *req,
                      struct provd_attest_result *res,
                      struct provd_err *err)
{
  struct tpm_plugin *t = state;
  if (!req || !req->id_scope || !req->registration_id) {
    t->host->err_set(err, "INTERNAL",
                     "attest: request without id scope or registration id");
    return PROVD_E_INVAL;
  }
  if (req->is_group) /* DPS has no TPM enrollment groups */
    return PROVD_DECLINED;
  int has_token = req->authorization && *req->authorization;
  int sent_keys = device_field(t, req->body, "endorsementKey") != NULL;
  struct device_keys *d = calloc(1, sizeof(*d));
  if (!d) {
    t->host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  int rc = PROVD_OK;
  if (sent_keys || !has_token)
    rc = read_device_keys(t, req, !has_token, d, err);
  if (rc == PROVD_OK && sent_keys)
    rc = check_enrolled_ek(t, req, &d->ek, err);
  if (rc == PROVD_OK)
    rc = has_token ? answer_challenge(t, call, req, d, res, err)
                   : issue_challenge(t, req, d, res, err);
  device_keys_clear(d);
  free(d);
  return rc;
}

/* ---- descriptor ---- */

/* Keep docs/plugins/tpm.md in sync (tests/unit/test_plugin_docs.c checks it). */
static const struct provd_option tpm_options[] = {
    {"challenge_lifetime", PROVD_OPT_DURATION, "5m", 0,
     "How long a device has to answer its challenge (1s to 10m).", NULL},
    {"clock_skew", PROVD_OPT_DURATION, "5m", 0,
     "How long after its expiry (se) a token is still accepted.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle tpm_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = tpm_create,
    .configure = tpm_configure,
    .destroy = tpm_destroy,
};

static const char *const tpm_mechanisms[] = {"tpm", NULL};

static const struct provd_attest_ops tpm_ops = {
    .struct_size = sizeof(struct provd_attest_ops),
    .mechanisms = tpm_mechanisms,
    .attest = tpm_attest,
    .flags = PROVD_ATTEST_CHALLENGE_ROUNDS,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ATTESTATION,
    /* RSA public-key operations and HMACs only: no I/O. */
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 4, /* b64_*, sas_*, attest_set_reuse_until (1);
                            attest_set_state (2); challenge rounds,
                            session_answered (4) */
    .name = "tpm",
    .version = PROVD_VERSION,
    .description = "DPS TPM 2.0 attestation (EK challenge, key import, SAS)",
    .vendor = "provd",
    .options = tpm_options,
    .lifecycle = &tpm_lifecycle,
    .ops = &tpm_ops,
};
