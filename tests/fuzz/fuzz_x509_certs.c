/* libFuzzer target over the certificate and CRL parsing of the x509
 * attestation plugin (plugins/attestation-x509): the device's TLS chain
 * (chain_from_pem), an enrollment's stored certificate (cert_from_text,
 * PEM or base64 DER) and CRLs (crls_from_text), the verification of the
 * chain against them (verify_against, OpenSSL's X509_verify_cert), the
 * DPS certificate info (certinfo.c), the trust cache (trust.c) and the
 * whole x509a_attest for an individual enrollment and a group.  The
 * plugin's statics are reached by compiling x509.c into this file; the
 * host API is the real one (core/plugin/host_api.c).
 * Input: presented chain \0 stored certificate \0 CRL text (missing parts
 * are empty).  Seeds: a CA, a device certificate it signed and its CRL.
 * Besides "no crash, no leak" it checks the contract: a chain holds 1..max
 * certificates; at most X509A_MAX_CRLS CRLs are kept; every certificate's
 * info and registration state are JSON objects; a verified chain names
 * its anchor and depth; the trust cache gives back what was put; the
 * attestation accepts only a chain whose leaf CN is the registration id,
 * declines only for groups, and
 * every refusal has a reason code and a message. */
#include "x509.c"

#include <jansson.h>

#include "plugin/loader.h"
#include "util/err.h"

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char REG_ID[] = "fuzz-device-01";
#define FUZZ_NOW 1798761600 /* 2027-01-01, inside the seeds' validity */

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
  static char state[CERTINFO_STATE_MAX], signer[CERTINFO_JSON_MAX];
  if (certinfo_json(v.anchor, signer, sizeof(signer)) == 0 &&
      certinfo_state_json(sk_X509_value(chain, 0), signer, "fuzz-group",
                          state, sizeof(state)) == 0)
    require_json_object(state);
  X509_free(v.anchor);
  free(v.anchor_info);
}

static void check_cache(const struct x509a *x, const struct trust *t)
{
  uint8_t key[TRUST_KEY_LEN] = {1};
  struct trust back = {{NULL, NULL}, NULL, {NULL, NULL}};
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

/* The whole op: the chain presented for REG_ID against an individual
 * enrollment (the stored text as the device certificate) and a group (the
 * stored text as its CA, with the CRL text). */
static void check_attest(struct x509a *x, const char *chain_pem,
                         const char *cert, const char *crl, int is_group)
{
  json_t *enr = json_pack(
      "{s:{s:s,s:{s:{s:{s:s}}}}}", "attestation", "type", "x509", "x509",
      is_group ? "signingCertificates" : "clientCertificates", "primary",
      "certificate", cert);
  if (!enr)
    return; /* not UTF-8: the service API never stores it */
  if (is_group && crl[0])
    json_object_set_new(json_object_get(json_object_get(enr, "attestation"),
                                        "x509"),
                        "crl", json_string(crl));
  struct provd_attest_request req = {.struct_size = sizeof(req),
                                     .registration_id = REG_ID,
                                     .mechanism = "x509",
                                     .enrollment = cfg_from_json(enr),
                                     .is_group = is_group,
                                     .enrollment_id = "fuzz-enrollment",
                                     .client_cert_chain_pem = chain_pem,
                                     .now_unix = FUZZ_NOW};
  struct provd_attest_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err;
  perr_clear(&err);
  int rc = x509a_attest(x, NULL, &req, &res, &err);
  if (rc == PROVD_OK) {
    STACK_OF(X509) *chain = chain_from_pem(chain_pem, x->max_chain);
    require(chain && leaf_cn_is(sk_X509_value(chain, 0), REG_ID));
    /* 0 (unset) when the group's certificate is the leaf itself. */
    require(res.match_depth <= (uint32_t)x->max_chain);
    sk_X509_pop_free(chain, X509_free);
  } else {
    require(rc == PROVD_DENIED || rc == PROVD_DECLINED ||
            rc == PROVD_E_CONFIG);
    require(err.code[0] != '\0' && err.msg[0] != '\0');
    require(rc != PROVD_DECLINED || is_group);
  }
  attest_result_clear(&res);
  json_decref(enr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct x509a *x;
  if (!x) {
    struct provd_err err;
    require(x509a_create(host_api(), NULL, (void **)&x, &err) == PROVD_OK);
  }
  char *parts[3];
  size_t at = 0;
  for (int i = 0; i < 3; i++)
    parts[i] = fuzz_next_part(data, size, &at);
  STACK_OF(X509) *chain = chain_from_pem(parts[0], x->max_chain);
  struct trust t = {{cert_from_text(x, parts[1]), NULL},
                    parts[2][0] ? crls_from_text(x, parts[2]) : NULL,
                    {NULL, NULL}};
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
  check_attest(x, parts[0], parts[1], parts[2], 0);
  check_attest(x, parts[0], parts[1], parts[2], 1);
  trust_clear(&t);
  sk_X509_pop_free(chain, X509_free);
  for (int i = 0; i < 3; i++)
    free(parts[i]);
  return 0;
}
