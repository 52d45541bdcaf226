/* libFuzzer target over the certificate and CRL parsing of the x509
 * attestation plugin (plugins/attestation-x509): the device's TLS chain
 * (chain_from_pem), an enrollment's stored certificate (cert_from_text,
 * PEM or base64 DER) and CRLs (crls_from_text), the verification of the
 * chain against them (verify_against, OpenSSL's X509_verify_cert), the
 * DPS certificate info (certinfo.c) and the trust cache (trust.c).  The
 * plugin's statics are reached by compiling x509.c into this file; the
 * host API is the real one (core/plugin/host_api.c).
 * Input: presented chain \0 stored certificate \0 CRL text (missing parts
 * are empty).  Seeds: a CA, a device certificate it signed and its CRL.
 * Besides "no crash, no leak" it checks the contract: a chain holds 1..max
 * certificates; at most X509A_MAX_CRLS CRLs are kept; every certificate's
 * info and registration state are JSON objects; a verified chain names
 * its anchor and depth; the trust cache gives back what was put. */
#include "x509.c"

#include <jansson.h>

#include "plugin/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char REG_ID[] = "fuzz-device-01";
#define FUZZ_NOW 1798761600 /* 2027-01-01, inside the seeds' validity */

static void require(int ok)
{
  if (!ok)
    abort();
}

static void require_json_object(const char *text)
{
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
  require(json_is_object(j));
  json_decref(j);
}

static void check_cert(X509 *cert)
{
  static char info[CERTINFO_STATE_MAX];
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  if (certinfo_json(cert, info, sizeof(info)) == 0)
    require_json_object(info);
  if (certinfo_thumbprint(cert, EVP_sha256(), hex, sizeof(hex)) == 0)
    require(strlen(hex) == 64);
  require(leaf_cn_is(cert, REG_ID) == 0 || leaf_cn_is(cert, REG_ID) == 1);
  require(same_thumbprint(cert, cert));
}

static void check_verdict(const struct x509a *x, STACK_OF(X509) *chain,
                          struct trust *t)
{
  struct provd_attest_request req = {.struct_size = sizeof(req),
                                     .registration_id = REG_ID,
                                     .now_unix = FUZZ_NOW};
  struct verdict v = {0};
  if (verify_against(x, &req, chain, t->anchors, 2, t->crls, &v) !=
      PROVD_OK)
    return;
  if (v.verify_error != X509_V_OK) {
    require(v.anchor == NULL && reason_of(v.verify_error) != NULL);
    return;
  }
  require(v.anchor != NULL && v.depth >= 0 && v.depth <= x->max_chain);
  static char state[CERTINFO_STATE_MAX];
  if (certinfo_state_json(sk_X509_value(chain, 0), v.anchor, "fuzz-group",
                          state, sizeof(state)) == 0)
    require_json_object(state);
  X509_free(v.anchor);
}

static void check_cache(const struct x509a *x, const struct trust *t)
{
  uint8_t key[TRUST_KEY_LEN] = {1};
  struct trust back = {{NULL, NULL}, NULL};
  trust_cache_put(x->cache, key, t);
  require(trust_cache_get(x->cache, key, &back) == 1);
  require(back.anchors[0] == t->anchors[0] &&
          back.anchors[1] == t->anchors[1]);
  /* A new stack of the same CRLs. */
  require(sk_X509_CRL_num(back.crls) == sk_X509_CRL_num(t->crls));
  for (int i = 0; i < sk_X509_CRL_num(t->crls); i++)
    require(sk_X509_CRL_value(back.crls, i) ==
            sk_X509_CRL_value(t->crls, i));
  trust_clear(&back);
}

/* Splits the input at NULs into exact-size, NUL-ended copies. */
static void split(const uint8_t *data, size_t size, char *parts[3])
{
  size_t at = 0;
  for (int i = 0; i < 3; i++) {
    const uint8_t *end =
        at < size ? memchr(data + at, '\0', size - at) : NULL;
    size_t n = at < size ? (end ? (size_t)(end - data) : size) - at : 0;
    parts[i] = malloc(n + 1);
    require(parts[i] != NULL);
    if (n)
      memcpy(parts[i], data + at, n);
    parts[i][n] = '\0';
    at += n + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct x509a *x;
  if (!x) {
    struct provd_err err;
    require(x509a_create(host_api(), NULL, (void **)&x, &err) == PROVD_OK);
  }
  char *parts[3];
  split(data, size, parts);
  STACK_OF(X509) *chain = chain_from_pem(parts[0], x->max_chain);
  struct trust t = {{cert_from_text(x, parts[1]), NULL},
                    parts[2][0] ? crls_from_text(x, parts[2]) : NULL};
  require(!t.crls || (sk_X509_CRL_num(t.crls) >= 1 &&
                      sk_X509_CRL_num(t.crls) <= X509A_MAX_CRLS));
  if (chain) {
    require(sk_X509_num(chain) >= 1 && sk_X509_num(chain) <= x->max_chain);
    for (int i = 0; i < sk_X509_num(chain); i++)
      check_cert(sk_X509_value(chain, i));
  }
  if (t.anchors[0])
    check_cert(t.anchors[0]);
  if (chain && (t.anchors[0] || t.crls))
    check_verdict(x, chain, &t);
  if (t.anchors[0] || t.crls)
    check_cache(x, &t);
  trust_clear(&t);
  sk_X509_pop_free(chain, X509_free);
  for (int i = 0; i < 3; i++)
    free(parts[i]);
  return 0;
}
