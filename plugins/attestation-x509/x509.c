/* x509 attestation: the device's TLS client certificate against its
 * enrollment.  Individual enrollments hold the device certificate itself
 * (matched by SHA-256 thumbprint); enrollment groups hold a signing CA
 * (root or intermediate) the presented chain must reach.  Chain building,
 * validity, key usage, extended key usage, basic constraints, path length
 * and CRLs are OpenSSL's X509_verify_cert with a store made for the one
 * enrollment.  See docs/plugins/x509.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certinfo.h"
#include "trust.h"
#include "provd/attest.h"
#include "provd/host.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define X509A_MAX_CHAIN_LIMIT 32
#define X509A_MAX_CERT_TEXT (64 * 1024) /* one stored certificate */
#define X509A_MAX_CRL_TEXT (1024 * 1024) /* a group's CRLs, together */
#define X509A_MAX_CRLS 8
#define X509A_MAX_CHAIN_TEXT (256 * 1024)
#define X509A_POLL_REUSE_S 300      /* a status poll may reuse the verdict */
#define X509A_TRUST_CACHE_SLOTS 64 /* groups whose CAs stay parsed */

struct x509a {
  const struct provd_host_api *host; /* borrowed until destroy */
  struct provd_instance *inst;
  int64_t max_chain; /* certificates a device may present */
  struct trust_cache *cache; /* parsed enrollment certificates and CRLs */
};

/* ---- lifecycle ---- */

static int x509a_create(const struct provd_host_api *host,
                        struct provd_instance *inst, void **state,
                        struct provd_err *err)
{
  struct x509a *x = calloc(1, sizeof(*x));
  if (!x) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  x->host = host;
  x->inst = inst;
  x->max_chain = 10;
  x->cache = trust_cache_new(X509A_TRUST_CACHE_SLOTS);
  if (!x->cache) {
    free(x);
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  *state = x;
  return PROVD_OK;
}

static int x509a_configure(void *state, const struct provd_cfg *opts,
                           struct provd_err *err)
{
  struct x509a *x = state;
  int64_t n = x->max_chain;
  int rc = opts ? x->host->cfg_int(opts, "max_chain_length", &n)
                : PROVD_NOT_FOUND;
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND) {
    x->host->err_set(err, "BAD_OPTION", "max_chain_length: not an integer");
    return PROVD_E_CONFIG;
  }
  if (n < 1 || n > X509A_MAX_CHAIN_LIMIT) {
    x->host->err_set(err, "BAD_OPTION",
                     "max_chain_length: %" PRId64 " is outside 1..%d", n,
                     X509A_MAX_CHAIN_LIMIT);
    return PROVD_E_CONFIG;
  }
  x->max_chain = n;
  return PROVD_OK;
}

static void x509a_destroy(void *state)
{
  struct x509a *x = state;
  trust_cache_free(x->cache);
  free(x);
}

/* ---- parsing ---- */

/* The presented chain, leaf first; NULL when it does not parse or holds
 * more than max certificates. */
static STACK_OF(X509) *chain_from_pem(const char *pem, int64_t max)
{
  size_t len = strnlen(pem, X509A_MAX_CHAIN_TEXT + 1);
  if (len > X509A_MAX_CHAIN_TEXT)
    return NULL;
  BIO *mem = BIO_new_mem_buf(pem, (int)len);
  STACK_OF(X509) *chain = sk_X509_new_null();
  X509 *cert;
  while (mem && chain && (cert = PEM_read_bio_X509(mem, NULL, NULL, NULL))) {
    if (sk_X509_num(chain) >= max || !sk_X509_push(chain, cert)) {
      X509_free(cert);
      sk_X509_pop_free(chain, X509_free);
      chain = NULL;
    }
  }
  ERR_clear_error(); /* the end of the PEM text is an "error" */
  BIO_free(mem);
  if (chain && sk_X509_num(chain) == 0) {
    sk_X509_free(chain);
    chain = NULL;
  }
  return chain;
}

/* The chain the device presented, leaf first (caller frees): as the TLS
 * handshake parsed it when the host hands it over (ABI 1.10), which
 * spares parsing each certificate again, else from the PEM text. */
static STACK_OF(X509) *presented_chain(const struct x509a *x,
                                       const struct provd_attest_request *req)
{
  STACK_OF(X509) *parsed =
      PROVD_HAS(req, struct provd_attest_request, client_cert_chain)
          ? req->client_cert_chain
          : NULL;
  if (parsed && sk_X509_num(parsed) > 0)
    return sk_X509_num(parsed) <= x->max_chain ? X509_chain_up_ref(parsed)
                                                : NULL;
  return req->client_cert_chain_pem
             ? chain_from_pem(req->client_cert_chain_pem, x->max_chain)
             : NULL;
}

/* Stored text: PEM, or base64 DER (DPS accepts both for certificates). */
static int text_to_der(const struct x509a *x, const char *text,
                       unsigned char **der, size_t *der_len)
{
  size_t len = strnlen(text, X509A_MAX_CRL_TEXT + 1);
  if (len == 0 || len > X509A_MAX_CRL_TEXT)
    return -1;
  *der = malloc(len);
  if (!*der)
    return -1;
  if (x->host->b64_decode(text, len, *der, len, der_len, NULL) != PROVD_OK) {
    free(*der);
    *der = NULL;
    return -1;
  }
  return 0;
}

static X509 *cert_from_text(const struct x509a *x, const char *text)
{
  if (strstr(text, "-----BEGIN")) {
    BIO *mem = BIO_new_mem_buf(text, (int)strnlen(text, X509A_MAX_CERT_TEXT));
    X509 *cert = mem ? PEM_read_bio_X509(mem, NULL, NULL, NULL) : NULL;
    BIO_free(mem);
    ERR_clear_error();
    return cert;
  }
  unsigned char *der = NULL;
  size_t der_len = 0;
  if (text_to_der(x, text, &der, &der_len) != 0)
    return NULL;
  const unsigned char *p = der;
  X509 *cert = d2i_X509(NULL, &p, (long)der_len);
  free(der);
  ERR_clear_error();
  return cert;
}

/* Every CRL of the text (PEM blocks one after the other, or one base64
 * DER CRL); NULL when there is none or one does not parse. */
static STACK_OF(X509_CRL) *crls_from_text(const struct x509a *x,
                                          const char *text)
{
  STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
  X509_CRL *crl = NULL;
  if (crls && strstr(text, "-----BEGIN")) {
    BIO *mem = BIO_new_mem_buf(text, (int)strnlen(text, X509A_MAX_CRL_TEXT));
    while (mem && sk_X509_CRL_num(crls) < X509A_MAX_CRLS &&
           (crl = PEM_read_bio_X509_CRL(mem, NULL, NULL, NULL)))
      if (!sk_X509_CRL_push(crls, crl))
        X509_CRL_free(crl);
    BIO_free(mem);
  } else if (crls) {
    unsigned char *der = NULL;
    size_t der_len = 0;
    if (text_to_der(x, text, &der, &der_len) == 0) {
      const unsigned char *p = der;
      if ((crl = d2i_X509_CRL(NULL, &p, (long)der_len)) &&
          !sk_X509_CRL_push(crls, crl))
        X509_CRL_free(crl);
      free(der);
    }
  }
  ERR_clear_error();
  if (crls && sk_X509_CRL_num(crls) == 0) {
    sk_X509_CRL_free(crls);
    crls = NULL;
  }
  return crls;
}

/* attestation.x509 of the enrollment, or NULL. */
static const struct provd_cfg *x509_section(const struct x509a *x,
                                            const struct provd_cfg *enr)
{
  const struct provd_cfg *att = NULL, *sec = NULL;
  if (!enr || x->host->cfg_child(enr, "attestation", &att) != PROVD_OK ||
      x->host->cfg_child(att, "x509", &sec) != PROVD_OK)
    return NULL;
  return sec;
}

/* <section>.<list>.<which>.certificate ("primary" / "secondary"). */
static const char *stored_cert_text(const struct x509a *x,
                                    const struct provd_cfg *sec,
                                    const char *list, const char *which)
{
  const struct provd_cfg *l = NULL, *w = NULL;
  const char *text = NULL;
  if (!sec || x->host->cfg_child(sec, list, &l) != PROVD_OK ||
      x->host->cfg_child(l, which, &w) != PROVD_OK ||
      x->host->cfg_str(w, "certificate", &text) != PROVD_OK || !text ||
      !*text)
    return NULL;
  return text;
}

/* ---- the leaf ---- */

/* 1 when the leaf's subject has exactly one CN and it equals id. */
static int leaf_cn_is(X509 *leaf, const char *id)
{
  X509_NAME *name = X509_get_subject_name(leaf);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0)
    return 0;
  unsigned char *cn = NULL;
  int n = ASN1_STRING_to_UTF8(
      &cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
  int same = n >= 0 && (size_t)n == strlen(id) && memcmp(cn, id, n) == 0;
  OPENSSL_free(cn);
  return same;
}

static int same_thumbprint(const X509 *a, const X509 *b)
{
  unsigned char da[32], db[32];
  unsigned int na = 0, nb = 0;
  return X509_digest(a, EVP_sha256(), da, &na) &&
         X509_digest(b, EVP_sha256(), db, &nb) && na == nb &&
         CRYPTO_memcmp(da, db, na) == 0;
}

/* ---- verification ---- */

/* A CRL is optional per issuer: a chain member without one is fine. */
static int crl_optional_cb(int ok, X509_STORE_CTX *ctx)
{
  if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNABLE_TO_GET_CRL)
    return 1;
  return ok;
}

/* What one verification found. */
struct verdict {
  int verify_error; /* X509_V_OK or X509_V_ERR_* */
  X509 *anchor;     /* the trusted certificate the chain reached (owned) */
  char *anchor_info; /* its certinfo_json for a group (owned) or NULL */
  int depth;        /* its position in the chain: 0 = the leaf itself */
  int error_depth;  /* the certificate verify_error is about */
};

/* X509_verify_cert of leaf + the rest of the presented chain against
 * anchors (trusted as they are, root or not) and an optional CRL. */
static int verify_against(const struct x509a *x,
                          const struct provd_attest_request *req,
                          STACK_OF(X509) *presented, X509 *const anchors[],
                          size_t n_anchors, STACK_OF(X509_CRL) *crls,
                          struct verdict *v)
{
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  int rc = store && ctx && untrusted ? PROVD_OK : PROVD_E_NOMEM;
  for (size_t i = 0; rc == PROVD_OK && i < n_anchors; i++)
    if (anchors[i] && !X509_STORE_add_cert(store, anchors[i]))
      rc = PROVD_E_NOMEM;
  for (int i = 1; rc == PROVD_OK && i < sk_X509_num(presented); i++)
    if (!sk_X509_push(untrusted, sk_X509_value(presented, i)))
      rc = PROVD_E_NOMEM;
  for (int i = 0; rc == PROVD_OK && i < sk_X509_CRL_num(crls); i++)
    if (!X509_STORE_add_crl(store, sk_X509_CRL_value(crls, i)))
      rc = PROVD_E_NOMEM;
  if (rc == PROVD_OK &&
      !X509_STORE_CTX_init(ctx, store, sk_X509_value(presented, 0),
                           untrusted))
    rc = PROVD_E_NOMEM;
  if (rc == PROVD_OK) {
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    unsigned long flags =
        X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_USE_CHECK_TIME;
    if (crls)
      flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
    X509_VERIFY_PARAM_set_flags(param, flags);
    X509_VERIFY_PARAM_set_time(param, (time_t)req->now_unix);
    X509_VERIFY_PARAM_set_depth(param, (int)x->max_chain);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    X509_STORE_CTX_set_verify_cb(ctx, crl_optional_cb);
    if (X509_verify_cert(ctx) == 1) {
      STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
      v->verify_error = X509_V_OK;
      v->depth = sk_X509_num(chain) - 1;
      v->anchor = sk_X509_value(chain, v->depth);
      X509_up_ref(v->anchor);
    } else {
      v->verify_error = X509_STORE_CTX_get_error(ctx);
      v->error_depth = X509_STORE_CTX_get_error_depth(ctx);
    }
  }
  ERR_clear_error();
  sk_X509_free(untrusted); /* the certificates belong to `presented` */
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return rc;
}

/* The chain never reached this enrollment's anchor: not its device. */
static int unreached(int verify_error)
{
  switch (verify_error) {
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_CERT_UNTRUSTED:
    return 1;
  default:
    return 0;
  }
}

static const char *reason_of(int verify_error)
{
  switch (verify_error) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return "CERT_EXPIRED";
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return "CERT_NOT_YET_VALID";
  case X509_V_ERR_CERT_REVOKED:
    return "CERT_REVOKED";
  default:
    return "CERT_UNTRUSTED";
  }
}

/* ---- the two kinds of enrollment ---- */

/* SHA-256 over the texts trust_parse reads: the trust cache's key. */
static int trust_key(const char *list, const char *const texts[3],
                     uint8_t key[TRUST_KEY_LEN])
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
           EVP_DigestUpdate(md, list, strlen(list) + 1);
  for (size_t i = 0; ok && i < 3; i++) {
    const char *t = texts[i] ? texts[i] : "";
    ok = EVP_DigestUpdate(md, t, strlen(t) + 1);
  }
  ok = ok && EVP_DigestFinal_ex(md, key, NULL);
  EVP_MD_CTX_free(md);
  return ok ? 0 : -1;
}

/* The enrollment's certificates of `list` (clientCertificates or
 * signingCertificates) and its CRL.  PROVD_E_CONFIG when the record holds
 * nothing usable (the service API checks what it stores; this is a
 * record written some other way). */
static int trust_parse(const struct x509a *x,
                       const struct provd_attest_request *req,
                       const char *list, const char *const texts[3],
                       struct trust *t, struct provd_err *err)
{
  static const char *const which[] = {"primary", "secondary"};
  size_t found = 0;
  for (size_t i = 0; i < 2; i++) {
    const char *text = texts[i];
    if (!text)
      continue;
    if (!(t->anchors[i] = cert_from_text(x, text))) {
      x->host->err_set(err, "INTERNAL",
                       "%s %s: attestation.x509.%s.%s is not a certificate",
                       req->is_group ? "enrollment group" : "enrollment",
                       req->enrollment_id, list, which[i]);
      trust_clear(t);
      return PROVD_E_CONFIG;
    }
    found++;
    char info[CERTINFO_JSON_MAX];
    if (req->is_group &&
        certinfo_json(t->anchors[i], info, sizeof(info)) == 0 &&
        !(t->anchor_info[i] = strdup(info))) {
      x->host->err_set(err, "INTERNAL", "out of memory");
      trust_clear(t);
      return PROVD_E_NOMEM;
    }
  }
  const char *crl_text = texts[2];
  if (crl_text && !(t->crls = crls_from_text(x, crl_text))) {
    x->host->err_set(err, "INTERNAL", "%s: attestation.x509.crl is not a CRL",
                     req->enrollment_id);
    trust_clear(t);
    return PROVD_E_CONFIG;
  }
  if (found == 0) {
    x->host->err_set(err, "INTERNAL",
                     "%s %s has no attestation.x509.%s certificate",
                     req->is_group ? "enrollment group" : "enrollment",
                     req->enrollment_id, list);
    trust_clear(t); /* the CRL, when there was one */
    return PROVD_E_CONFIG;
  }
  return PROVD_OK;
}

/* trust_parse of the enrollment's texts; for groups (many devices, one
 * CA) from the cache when the same texts were parsed before.  Individual
 * enrollments are not cached: each serves one device, and thousands of
 * them would only push the groups' CAs out. */
static int trust_load(const struct x509a *x,
                      const struct provd_attest_request *req,
                      const char *list, struct trust *t,
                      struct provd_err *err)
{
  const struct provd_cfg *sec = x509_section(x, req->enrollment);
  const char *texts[3] = {stored_cert_text(x, sec, list, "primary"),
                          stored_cert_text(x, sec, list, "secondary"), NULL};
  if (sec && x->host->cfg_str(sec, "crl", &texts[2]) == PROVD_OK &&
      texts[2] && !*texts[2])
    texts[2] = NULL;
  uint8_t key[TRUST_KEY_LEN];
  int keyed = req->is_group && trust_key(list, texts, key) == 0;
  if (keyed && trust_cache_get(x->cache, key, t))
    return PROVD_OK;
  int rc = trust_parse(x, req, list, texts, t, err);
  if (rc == PROVD_OK && keyed)
    trust_cache_put(x->cache, key, t);
  return rc;
}

static int provisioning_disabled(const struct x509a *x,
                                 const struct provd_cfg *enr)
{
  const char *status = NULL;
  return enr &&
         x->host->cfg_str(enr, "provisioningStatus", &status) == PROVD_OK &&
         status && strcmp(status, "disabled") == 0;
}

/* Individual: the leaf is one of the enrolled certificates. */
static int attest_individual(const struct x509a *x,
                             const struct provd_attest_request *req,
                             STACK_OF(X509) *presented, struct verdict *v,
                             struct provd_err *err)
{
  struct trust t = {{NULL, NULL}, NULL, {NULL, NULL}};
  int rc = trust_load(x, req, "clientCertificates", &t, err);
  if (rc != PROVD_OK)
    return rc;
  X509 *leaf = sk_X509_value(presented, 0);
  X509 *match = NULL;
  for (size_t i = 0; i < 2 && !match; i++)
    if (t.anchors[i] && same_thumbprint(leaf, t.anchors[i]))
      match = t.anchors[i];
  if (!match) {
    /* A disabled enrollment blocks its registration id whatever the
     * device presents (DPS: disable one device of a group). */
    int disabled = provisioning_disabled(x, req->enrollment);
    x->host->err_set(err, disabled ? "ENROLLMENT_DISABLED" : "CERT_UNTRUSTED",
                     "registration %s: %s", req->registration_id,
                     disabled ? "individual enrollment is disabled"
                              : "certificate is not the enrolled one");
    trust_clear(&t);
    return PROVD_DENIED;
  }
  X509 *only[1] = {match};
  rc = verify_against(x, req, presented, only, 1, t.crls, v);
  trust_clear(&t);
  return rc;
}

/* v->anchor_info for the anchor the chain reached: taken from t when
 * it is one of t's (made when t was parsed), else made now (the
 * verifier may have ended on the device's copy of the same CA). */
static void describe_anchor(struct trust *t, struct verdict *v)
{
  if (!v->anchor)
    return;
  for (size_t i = 0; i < 2; i++)
    if (v->anchor == t->anchors[i] && t->anchor_info[i]) {
      v->anchor_info = t->anchor_info[i];
      t->anchor_info[i] = NULL;
      return;
    }
  char info[CERTINFO_JSON_MAX];
  if (certinfo_json(v->anchor, info, sizeof(info)) == 0)
    v->anchor_info = strdup(info);
}

static int attest_group(const struct x509a *x,
                        const struct provd_attest_request *req,
                        STACK_OF(X509) *presented, struct verdict *v,
                        struct provd_err *err)
{
  struct trust t = {{NULL, NULL}, NULL, {NULL, NULL}};
  int rc = trust_load(x, req, "signingCertificates", &t, err);
  if (rc != PROVD_OK)
    return rc;
  rc = verify_against(x, req, presented, t.anchors, 2, t.crls, v);
  describe_anchor(&t, v);
  trust_clear(&t);
  return rc;
}

/* ---- the op ---- */

static void set_answer(const struct x509a *x,
                       const struct provd_attest_request *req,
                       X509 *leaf, const struct verdict *v,
                       struct provd_attest_result *res)
{
  char state[CERTINFO_STATE_MAX];
  if ((!req->is_group || v->anchor_info) &&
      certinfo_state_json(leaf, req->is_group ? v->anchor_info : NULL,
                          req->is_group ? req->enrollment_id : NULL, state,
                          sizeof(state)) == 0)
    x->host->attest_set_state(res, "x509", state);
  if (req->is_group)
    x->host->attest_set_match_depth(res, (uint32_t)v->depth);
  x->host->attest_set_reuse_until(res, req->now_unix + X509A_POLL_REUSE_S);
}

static int x509a_attest(void *state, struct provd_call *call,
                        const struct provd_attest_request *req,
                        struct provd_attest_result *res,
                        struct provd_err *err)
{
  struct x509a *x = state;
  const struct provd_host_api *h = x->host;
  (void)call;
  if (!req || !req->registration_id || !req->enrollment_id) {
    h->err_set(err, "INTERNAL", "attest: request without ids");
    return PROVD_E_INVAL;
  }
  STACK_OF(X509) *presented = presented_chain(x, req);
  if (!presented) {
    h->err_set(err, "CERT_MISSING",
               "registration %s: no usable TLS client certificate (none, "
               "unparsable, or a chain of more than %" PRId64 ")",
               req->registration_id, x->max_chain);
    return PROVD_DENIED;
  }
  X509 *leaf = sk_X509_value(presented, 0);
  int rc;
  struct verdict v = {X509_V_OK, NULL, NULL, 0, 0};
  if (!leaf_cn_is(leaf, req->registration_id)) {
    h->err_set(err, "CERT_CN_MISMATCH",
               "registration %s: the certificate's subject CN is not the "
               "registration id",
               req->registration_id);
    rc = PROVD_DENIED;
  } else {
    rc = req->is_group ? attest_group(x, req, presented, &v, err)
                       : attest_individual(x, req, presented, &v, err);
  }
  if (rc == PROVD_OK && v.verify_error != X509_V_OK) {
    h->err_set(err, reason_of(v.verify_error),
               "registration %s: %s %s: certificate %d of the chain: %s",
               req->registration_id,
               req->is_group ? "enrollment group" : "enrollment",
               req->enrollment_id, v.error_depth,
               X509_verify_cert_error_string(v.verify_error));
    /* A group whose CA the chain does not reach is not a verdict: the
     * core asks the next group. */
    rc = req->is_group && unreached(v.verify_error) ? PROVD_DECLINED
                                                    : PROVD_DENIED;
  }
  if (rc == PROVD_OK)
    set_answer(x, req, leaf, &v, res);
  X509_free(v.anchor);
  free(v.anchor_info);
  sk_X509_pop_free(presented, X509_free);
  return rc;
}

/* ---- descriptor ---- */

/* Keep docs/plugins/x509.md in sync (tests/unit/test_plugin_docs.c
 * checks it). */
static const struct provd_option x509a_options[] = {
    {"max_chain_length", PROVD_OPT_INT, "10", 0,
     "Most certificates a device may present (leaf included); a longer "
     "chain is refused with CERT_MISSING.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle x509a_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = x509a_create,
    .configure = x509a_configure,
    .destroy = x509a_destroy,
};

static const char *const x509a_mechanisms[] = {"x509", NULL};

static const struct provd_attest_ops x509a_ops = {
    .struct_size = sizeof(struct provd_attest_ops),
    .mechanisms = x509a_mechanisms,
    .attest = x509a_attest,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ATTESTATION,
    /* Only computes: no I/O, the cache lock is held for a lookup.  A
     * verification is one or two ECDSA/RSA signature checks. */
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 2, /* attest_set_state, attest_set_match_depth */
    .name = "x509",
    .version = PROVD_VERSION,
    .description = "DPS X.509 attestation (device certificates, CA-signed "
                   "enrollment groups, CRLs)",
    .vendor = "provd",
    .options = x509a_options,
    .lifecycle = &x509a_lifecycle,
    .ops = &x509a_ops,
};
