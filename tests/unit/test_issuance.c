/* Certificate issuance from a device CSR: tls/csr refuses what must not be
 * signed (each with its reason code), tls/issuer loads only sound CA
 * material and signs chains OpenSSL's verifier accepts.  Keys, requests
 * and CAs are made with OpenSSL inside the test. */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "provd/plugin.h"
#include "tls/certgen.h"
#include "tls/csr.h"
#include "tls/issuer.h"
#include "util/b64.h"

static char g_tmp[256];

static void setup(void)
{
  snprintf(g_tmp, sizeof g_tmp, "/tmp/provd-test-issuance-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_tmp));
}

static void teardown(void)
{
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_tmp);
}

/* ---- material ---- */

static EVP_PKEY *ec_key(const char *curve)
{
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
  ck_assert_ptr_nonnull(k);
  return k;
}

static EVP_PKEY *rsa_key(void)
{
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  ck_assert_ptr_nonnull(k);
  return k;
}

/* A CSR for `key` with the given CNs (NULL-ended), signed by `signer`. */
static X509_REQ *make_req(EVP_PKEY *key, const char *const cns[],
                          EVP_PKEY *signer)
{
  X509_REQ *req = X509_REQ_new();
  ck_assert_ptr_nonnull(req);
  X509_NAME *name = X509_REQ_get_subject_name(req);
  for (size_t i = 0; cns[i]; i++)
    ck_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                         (const unsigned char *)cns[i], -1,
                                         -1, 0));
  ck_assert(X509_REQ_set_pubkey(req, key));
  ck_assert(X509_REQ_sign(req, signer, EVP_sha384()) > 0);
  return req;
}

/* base64 of der + extra trailing bytes; caller frees. */
static char *req_b64(X509_REQ *req, size_t extra)
{
  unsigned char *der = NULL;
  int len = i2d_X509_REQ(req, &der);
  ck_assert_int_gt(len, 0);
  unsigned char *buf = calloc(1, (size_t)len + extra);
  memcpy(buf, der, (size_t)len);
  char *b64 = b64_encode(buf, (size_t)len + extra);
  OPENSSL_free(der);
  free(buf);
  return b64;
}

static char *csr_for(EVP_PKEY *key, const char *cn)
{
  const char *cns[] = {cn, NULL};
  X509_REQ *req = make_req(key, cns, key);
  char *b64 = req_b64(req, 0);
  X509_REQ_free(req);
  return b64;
}

/* csr_check's verdict: "OK" or the reason code. */
static const char *verdict(const char *b64, const char *regid,
                           enum csr_key_rule rule, char code[64])
{
  X509_REQ *req = (X509_REQ *)1;
  struct provd_err err = {0};
  int rc = csr_check(b64, regid, rule, &req, &err);
  if (rc == PROVD_OK) {
    ck_assert_ptr_nonnull(req);
    X509_REQ_free(req);
    snprintf(code, 64, "OK");
  } else {
    ck_assert_int_eq(rc, PROVD_E_INVAL);
    ck_assert_ptr_null(req);
    ck_assert_msg(err.msg[0], "a refusal says why");
    snprintf(code, 64, "%s", err.code);
  }
  return code;
}

/* ---- CSR checks ---- */

START_TEST(t_good_p384)
{
  char code[64];
  EVP_PKEY *k = ec_key("P-384");
  char *b64 = csr_for(k, "dev-1");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code), "OK");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_EC_OR_RSA, code), "OK");
  free(b64);
  EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_wrong_cn)
{
  char code[64];
  EVP_PKEY *k = ec_key("P-384");
  char *b64 = csr_for(k, "dev-2");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_CN_MISMATCH");
  ck_assert_str_eq(verdict(b64, "dev-", CSR_KEY_P384, code),
                   "CSR_CN_MISMATCH");
  ck_assert_str_eq(verdict(b64, "DEV-2", CSR_KEY_P384, code),
                   "CSR_CN_MISMATCH");
  free(b64);
  const char *two[] = {"dev-1", "dev-1", NULL};
  X509_REQ *req = make_req(k, two, k);
  b64 = req_b64(req, 0);
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_CN_MISMATCH");
  X509_REQ_free(req);
  free(b64);
  const char *none[] = {NULL};
  req = make_req(k, none, k);
  b64 = req_b64(req, 0);
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_CN_MISMATCH");
  X509_REQ_free(req);
  free(b64);
  EVP_PKEY_free(k);
}
END_TEST

START_TEST(t_bad_signature)
{
  char code[64];
  EVP_PKEY *k = ec_key("P-384"), *other = ec_key("P-384");
  const char *cn[] = {"dev-1", NULL};
  X509_REQ *req = make_req(k, cn, other); /* key of k, signed by other */
  char *b64 = req_b64(req, 0);
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_BAD_SIGNATURE");
  X509_REQ_free(req);
  free(b64);
  EVP_PKEY_free(k);
  EVP_PKEY_free(other);
}
END_TEST

START_TEST(t_key_rules)
{
  char code[64];
  EVP_PKEY *rsa = rsa_key(), *p256 = ec_key("P-256");
  char *b64 = csr_for(rsa, "dev-1");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_KEY_UNSUPPORTED");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_EC_OR_RSA, code), "OK");
  free(b64);
  b64 = csr_for(p256, "dev-1");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_KEY_UNSUPPORTED");
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_EC_OR_RSA, code), "OK");
  free(b64);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(p256);
}
END_TEST

START_TEST(t_garbage_and_oversize)
{
  char code[64];
  static const char *const garbage[] = {
      "", "not base64!", "AAAA", "MIIB", "-----BEGIN CERTIFICATE REQUEST-----",
      "aGVsbG8gd29ybGQ=", NULL};
  for (size_t i = 0; garbage[i]; i++)
    ck_assert_str_eq(verdict(garbage[i], "dev-1", CSR_KEY_P384, code),
                     "CSR_MALFORMED");
  ck_assert_str_eq(verdict(NULL, "dev-1", CSR_KEY_P384, code),
                   "CSR_MALFORMED");
  /* A good request followed by more bytes is not "one request". */
  EVP_PKEY *k = ec_key("P-384");
  const char *cn[] = {"dev-1", NULL};
  X509_REQ *req = make_req(k, cn, k);
  char *b64 = req_b64(req, 3);
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_MALFORMED");
  free(b64);
  /* Above CSR_MAX_DER: refused before any parsing. */
  unsigned char *big = calloc(1, CSR_MAX_DER + 1);
  b64 = b64_encode(big, CSR_MAX_DER + 1);
  ck_assert_str_eq(verdict(b64, "dev-1", CSR_KEY_P384, code),
                   "CSR_MALFORMED");
  free(b64);
  free(big);
  X509_REQ_free(req);
  EVP_PKEY_free(k);
}
END_TEST

/* ---- the issuer ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  ck_assert_int_eq(chmod(path, mode), 0);
}

static void append_cert(const char *path, X509 *cert)
{
  FILE *f = fopen(path, "a");
  ck_assert_ptr_nonnull(f);
  ck_assert(PEM_write_X509(f, cert));
  fclose(f);
}

static void write_key(const char *path, EVP_PKEY *key, mode_t mode)
{
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
  fclose(f);
  ck_assert_int_eq(chmod(path, mode), 0);
}

static X509 *make_ca(EVP_PKEY *key, const char *cn, X509 *parent,
                     EVP_PKEY *parent_key, long days)
{
  static const struct certgen_ext profile[] = {
      {NID_basic_constraints, "critical,CA:TRUE"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {0, NULL}};
  const struct certgen_signer signer = {parent, parent ? parent_key : key,
                                        EVP_sha384()};
  X509 *cert = certgen_sign(key, cn, days, profile, &signer);
  ck_assert_ptr_nonnull(cert);
  return cert;
}

/* root -> intermediate in DIR/chain.pem (intermediate first), the
 * intermediate's key in DIR/ca.key with key_mode. */
struct pki {
  EVP_PKEY *root_key, *int_key;
  X509 *root, *inter;
  char chain[512], key[512], root_pem[512];
};

static void make_pki(struct pki *p, mode_t key_mode, long inter_days)
{
  p->root_key = ec_key("P-384");
  p->int_key = ec_key("P-384");
  p->root = make_ca(p->root_key, "Test Root", NULL, NULL, 3650);
  p->inter = make_ca(p->int_key, "Test Issuing CA", p->root, p->root_key,
                     inter_days);
  snprintf(p->chain, sizeof p->chain, "%s/chain.pem", g_tmp);
  snprintf(p->key, sizeof p->key, "%s/ca.key", g_tmp);
  snprintf(p->root_pem, sizeof p->root_pem, "%s/root.pem", g_tmp);
  write_file(p->chain, "", 0644);
  append_cert(p->chain, p->inter);
  append_cert(p->chain, p->root);
  write_file(p->root_pem, "", 0644);
  append_cert(p->root_pem, p->root);
  write_key(p->key, p->int_key, key_mode);
}

static void free_pki(struct pki *p)
{
  EVP_PKEY_free(p->root_key);
  EVP_PKEY_free(p->int_key);
  X509_free(p->root);
  X509_free(p->inter);
}

static int load(const char *cert, const char *key, int days,
                struct issuer_set **out, struct provd_err *err)
{
  struct cfg_issuer ci = {.name = "fleet", .cert = (char *)cert,
                          .key_file = (char *)key, .validity_days = days,
                          .csr_key_rule = CSR_KEY_P384};
  struct provd_config cfg = {.issuers = &ci, .n_issuers = 1};
  return issuers_load(&cfg, out, err);
}

static X509 *decode_cert(const json_t *item)
{
  const char *b64 = json_string_value(item);
  ck_assert_ptr_nonnull(b64);
  unsigned char der[8192];
  size_t n = 0;
  ck_assert_int_eq(b64_decode(b64, der, sizeof der, &n), 0);
  const unsigned char *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)n);
  ck_assert_ptr_nonnull(x);
  return x;
}

/* Issues for dev-1 and returns the verified leaf; chain checked. */
static X509 *issue_and_verify(const struct issuer *iss, struct pki *p)
{
  EVP_PKEY *dev = ec_key("P-384");
  char *b64 = csr_for(dev, "dev-1");
  X509_REQ *req = NULL;
  struct provd_err err = {0};
  ck_assert_int_eq(csr_check(b64, "dev-1", issuer_key_rule(iss), &req, &err),
                   PROVD_OK);
  json_t *chain = NULL;
  ck_assert_int_eq(issuer_sign(iss, req, "dev-1", &chain, &err), PROVD_OK);
  ck_assert_uint_eq(json_array_size(chain), 3); /* leaf, issuing CA, root */
  X509 *leaf = decode_cert(json_array_get(chain, 0));
  X509 *inter = decode_cert(json_array_get(chain, 1));
  X509 *root = decode_cert(json_array_get(chain, 2));
  ck_assert_int_eq(X509_cmp(inter, p->inter), 0);
  ck_assert_int_eq(X509_cmp(root, p->root), 0);
  ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), dev), 1);
  /* OpenSSL's verifier, trusting the root only, for TLS client use. */
  X509_STORE *store = X509_STORE_new();
  X509_STORE_add_cert(store, p->root);
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  sk_X509_push(untrusted, inter);
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, untrusted);
  X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(ctx),
                                X509_PURPOSE_SSL_CLIENT);
  ck_assert_msg(X509_verify_cert(ctx) == 1, "%s",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  X509_free(inter);
  X509_free(root);
  json_decref(chain);
  X509_REQ_free(req);
  free(b64);
  EVP_PKEY_free(dev);
  return leaf;
}

static int days_left(const X509 *cert)
{
  int days = 0, secs = 0;
  ck_assert(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)));
  return days;
}

START_TEST(t_issue_verifies)
{
  struct pki p;
  make_pki(&p, 0600, 3650);
  struct issuer_set *set = NULL;
  struct provd_err err = {0};
  ck_assert_msg(load(p.chain, p.key, 30, &set, &err) == PROVD_OK, "%s",
                err.msg);
  ck_assert_ptr_null(issuers_find(set, "other"));
  ck_assert_ptr_null(issuers_find(set, NULL));
  X509 *leaf = issue_and_verify(issuers_find(set, "fleet"), &p);
  ck_assert_int_eq(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA384);
  char cn[160] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
                            sizeof cn);
  ck_assert_str_eq(cn, "dev-1");
  ck_assert_int_eq(X509_check_ca(leaf), 0);
  ck_assert(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);
  int left = days_left(leaf);
  ck_assert_msg(left >= 29 && left <= 30, "validity %d days", left);
  X509_free(leaf);
  issuers_free(set);
  free_pki(&p);
}
END_TEST

START_TEST(t_validity_capped_by_ca)
{
  struct pki p;
  make_pki(&p, 0600, 5);
  struct issuer_set *set = NULL;
  struct provd_err err = {0};
  ck_assert_msg(load(p.chain, p.key, 365, &set, &err) == PROVD_OK, "%s",
                err.msg);
  X509 *leaf = issue_and_verify(issuers_find(set, "fleet"), &p);
  ck_assert_int_eq(ASN1_TIME_compare(X509_get0_notAfter(leaf),
                                     X509_get0_notAfter(p.inter)), 0);
  X509_free(leaf);
  issuers_free(set);
  free_pki(&p);
}
END_TEST

static void assert_refused(const char *cert, const char *key,
                           const char *needle)
{
  struct issuer_set *set = (struct issuer_set *)1;
  struct provd_err err = {0};
  ck_assert_int_ne(load(cert, key, 30, &set, &err), PROVD_OK);
  ck_assert_ptr_null(set);
  ck_assert_str_eq(err.code, "ISSUER_CONFIG");
  ck_assert_msg(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
  ck_assert_msg(!strstr(err.msg, "PRIVATE KEY"), "key material in message");
}

START_TEST(t_load_refusals)
{
  struct pki p;
  make_pki(&p, 0644, 3650);
  assert_refused(p.chain, p.key, "readable by group or others");
  ck_assert_int_eq(chmod(p.key, 0600), 0);
  /* The root's file with the intermediate's key. */
  assert_refused(p.root_pem, p.key, "does not belong");
  /* A chain that does not end at a root. */
  char only_inter[600];
  snprintf(only_inter, sizeof only_inter, "%s/inter.pem", g_tmp);
  write_file(only_inter, "", 0644);
  append_cert(only_inter, p.inter);
  assert_refused(only_inter, p.key, "self-signed root");
  /* Garbage instead of a certificate; a key that is not PEM. */
  char junk[600];
  snprintf(junk, sizeof junk, "%s/junk.pem", g_tmp);
  write_file(junk, "hello\n", 0600);
  assert_refused(junk, p.key, "PEM certificates");
  assert_refused(p.chain, junk, "no unencrypted PEM private key");
  /* A leaf (CA:FALSE) cannot issue. */
  EVP_PKEY *lk = ec_key("P-384");
  X509 *leaf = certgen_new(lk, "not-a-ca", 30);
  X509_set_issuer_name(leaf, X509_get_subject_name(leaf));
  certgen_add_ext(leaf, leaf, NID_basic_constraints, "critical,CA:FALSE");
  X509_sign(leaf, lk, EVP_sha384());
  char leaf_pem[600], leaf_key[600];
  snprintf(leaf_pem, sizeof leaf_pem, "%s/leaf.pem", g_tmp);
  snprintf(leaf_key, sizeof leaf_key, "%s/leaf.key", g_tmp);
  write_file(leaf_pem, "", 0644);
  append_cert(leaf_pem, leaf);
  write_key(leaf_key, lk, 0600);
  assert_refused(leaf_pem, leaf_key, "not a CA");
  X509_free(leaf);
  EVP_PKEY_free(lk);
  free_pki(&p);
}
END_TEST

static Suite *issuance_suite(void)
{
  Suite *s = suite_create("issuance");
  TCase *tc = tcase_create("csr");
  tcase_add_test(tc, t_good_p384);
  tcase_add_test(tc, t_wrong_cn);
  tcase_add_test(tc, t_bad_signature);
  tcase_add_test(tc, t_key_rules);
  tcase_add_test(tc, t_garbage_and_oversize);
  suite_add_tcase(s, tc);
  tc = tcase_create("issuer");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_issue_verifies);
  tcase_add_test(tc, t_validity_capped_by_ca);
  tcase_add_test(tc, t_load_refusals);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  umask(022);
  SRunner *sr = srunner_create(issuance_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
