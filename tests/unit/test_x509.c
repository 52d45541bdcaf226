/* The x509 attestation plugin, loaded from its .so through the real loader
 * and host table.  Every chain is made here with OpenSSL (root ->
 * intermediate -> leaf, ECDSA P-256 and RSA-2048), so nothing depends on
 * files that could expire. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "plugin/loader.h"
#include "provd/attest.h"
#include "provd/host.h"
#include "provd/plugin.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/x509ext.h"

#define NOW 1800000000LL
#define DAY 86400L

static const struct provd_plugin *desc;
static const struct provd_attest_ops *ops;

struct inst {
  struct plugin_instance pi;
  void *state;
};

/* ---- making certificates ---- */

struct cred {
  EVP_PKEY *key;
  X509 *cert;
};

static EVP_PKEY *new_key(int rsa)
{
  EVP_PKEY *k = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                    : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ck_assert_ptr_nonnull(k);
  return k;
}

/* basic: "CA:TRUE", "CA:TRUE,pathlen:0", "CA:FALSE".  issuer NULL: self
 * signed.  Validity [NOW + from_days, NOW + to_days]. */
static struct cred make(const char *cn, int rsa, const struct cred *issuer,
                        const char *basic, long from_days, long to_days,
                        long serial)
{
  struct cred c = {new_key(rsa), X509_new()};
  X509 *x = c.cert;
  ck_assert_int_eq(X509_set_version(x, 2), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             (const unsigned char *)"provd tests", -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name);
  time_t now = (time_t)NOW;
  ck_assert_ptr_nonnull(X509_time_adj_ex(X509_getm_notBefore(x),
                                         (int)from_days, 0, &now));
  ck_assert_ptr_nonnull(X509_time_adj_ex(X509_getm_notAfter(x),
                                         (int)to_days, 0, &now));
  X509_set_pubkey(x, c.key);
  X509 *signer = issuer ? issuer->cert : x;
  ck_assert_int_eq(x509_ext_add(x, signer, NID_basic_constraints, basic),
                   0);
  if (strstr(basic, "CA:TRUE")) {
    ck_assert_int_eq(x509_ext_add(x, signer, NID_key_usage,
                                  "critical,keyCertSign,cRLSign"),
                     0);
  } else {
    ck_assert_int_eq(x509_ext_add(x, signer, NID_key_usage,
                                  "critical,digitalSignature"),
                     0);
    ck_assert_int_eq(
        x509_ext_add(x, signer, NID_ext_key_usage, "clientAuth"), 0);
  }
  ck_assert_int_gt(X509_sign(x, issuer ? issuer->key : c.key, EVP_sha256()),
                   0);
  /* What a device sends is DER: reparse, so no flag OpenSSL cached while
   * the certificate was being built survives. */
  unsigned char *der = NULL;
  int len = i2d_X509(x, &der);
  const unsigned char *p = der;
  c.cert = d2i_X509(NULL, &p, len);
  ck_assert_ptr_nonnull(c.cert);
  OPENSSL_free(der);
  X509_free(x);
  return c;
}

static void cred_free(struct cred *c)
{
  EVP_PKEY_free(c->key);
  X509_free(c->cert);
}

/* PEM of the certificates, concatenated; caller frees. */
static char *pem_of(X509 *const certs[], size_t n)
{
  BIO *mem = BIO_new(BIO_s_mem());
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(PEM_write_bio_X509(mem, certs[i]), 1);
  char *data = NULL;
  long len = BIO_get_mem_data(mem, &data);
  char *out = strndup(data, (size_t)len);
  BIO_free(mem);
  return out;
}

static char *pem1(X509 *cert)
{
  return pem_of(&cert, 1);
}

static char *pem2(X509 *a, X509 *b)
{
  X509 *certs[2] = {a, b};
  return pem_of(certs, 2);
}

/* A CRL of `issuer` revoking `serial`, valid around NOW. */
static char *crl_pem(const struct cred *issuer, long serial)
{
  X509_CRL *crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer->cert));
  time_t now = (time_t)NOW;
  ASN1_TIME *t = X509_time_adj_ex(NULL, -1, 0, &now);
  X509_CRL_set1_lastUpdate(crl, t);
  ASN1_TIME_free(t);
  t = X509_time_adj_ex(NULL, 30, 0, &now);
  X509_CRL_set1_nextUpdate(crl, t);
  ASN1_TIME_free(t);
  X509_REVOKED *r = X509_REVOKED_new();
  ASN1_INTEGER *sn = ASN1_INTEGER_new();
  ASN1_INTEGER_set(sn, serial);
  X509_REVOKED_set_serialNumber(r, sn);
  ASN1_INTEGER_free(sn);
  t = X509_time_adj_ex(NULL, -1, 0, &now);
  X509_REVOKED_set_revocationDate(r, t);
  ASN1_TIME_free(t);
  X509_CRL_add0_revoked(crl, r);
  X509_CRL_sort(crl);
  ck_assert_int_gt(X509_CRL_sign(crl, issuer->key, EVP_sha256()), 0);
  BIO *mem = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_CRL(mem, crl);
  char *data = NULL;
  long len = BIO_get_mem_data(mem, &data);
  char *out = strndup(data, (size_t)len);
  BIO_free(mem);
  X509_CRL_free(crl);
  return out;
}

/* ---- the fixture: one hierarchy per key type ---- */

static struct cred root, inter, leaf, root_rsa, inter_rsa, leaf_rsa;
static struct cred other_root, other_inter, other_leaf;

static void make_hierarchies(void)
{
  root = make("Test Root", 0, NULL, "critical,CA:TRUE", -10, 3650, 1);
  inter = make("Test Intermediate", 0, &root, "critical,CA:TRUE,pathlen:0",
               -10, 3650, 2);
  leaf = make("dev-1", 0, &inter, "critical,CA:FALSE", -1, 365, 100);
  root_rsa = make("RSA Root", 1, NULL, "critical,CA:TRUE", -10, 3650, 1);
  inter_rsa = make("RSA Intermediate", 1, &root_rsa, "critical,CA:TRUE", -10,
                   3650, 2);
  leaf_rsa = make("dev-rsa", 1, &inter_rsa, "critical,CA:FALSE", -1, 365, 3);
  other_root = make("Other Root", 0, NULL, "critical,CA:TRUE", -10, 3650, 1);
  other_inter = make("Test Intermediate", 0, &other_root, "critical,CA:TRUE",
                     -10, 3650, 2); /* same name as inter, other key */
  other_leaf = make("dev-1", 0, &other_inter, "critical,CA:FALSE", -1, 365,
                    100);
}

/* ---- the plugin ---- */

static struct inst in;

static void setup(void)
{
  if (!desc) {
    const char *dir = getenv("PROVD_PLUGIN_DIR");
    ck_assert_msg(dir != NULL, "PROVD_PLUGIN_DIR is not set");
    char path[4096];
    snprintf(path, sizeof(path), "%s/x509.so", dir);
    struct provd_err err = {{0}, {0}};
    ck_assert_msg(plugin_open(path, &desc, &err) == PROVD_OK, "%s: %s", path,
                  err.msg);
    ops = desc->ops;
    make_hierarchies();
  }
  memset(&in, 0, sizeof(in));
  in.pi.desc = desc;
  in.pi.kind = PROVD_KIND_ATTESTATION;
  in.pi.name = (char *)"x509";
  in.pi.id = (char *)"x509";
  pthread_mutex_init(&in.pi.op_lock, NULL);
  in.pi.options = json_pack("{s:i}", "max_chain_length", 10);
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(desc->lifecycle->create(host_api(),
                                           (struct provd_instance *)&in.pi,
                                           &in.state, &err),
                   PROVD_OK);
  ck_assert_int_eq(desc->lifecycle->configure(
                       in.state, cfg_from_json(in.pi.options), &err),
                   PROVD_OK);
}

static void teardown(void)
{
  desc->lifecycle->destroy(in.state);
  json_decref(in.pi.options);
  pthread_mutex_destroy(&in.pi.op_lock);
}

/* attestation.x509.<list> = {primary: {certificate: p}, secondary: ...}
 * (+ crl) as the service API stores it. */
static json_t *enrollment(const char *list, const char *primary,
                          const char *secondary, const char *crl,
                          const char *status)
{
  json_t *certs = json_object();
  if (primary)
    json_object_set_new(certs, "primary",
                        json_pack("{s:s}", "certificate", primary));
  if (secondary)
    json_object_set_new(certs, "secondary",
                        json_pack("{s:s}", "certificate", secondary));
  json_t *x509 = json_pack("{s:o}", list, certs);
  if (crl)
    json_object_set_new(x509, "crl", json_string(crl));
  return json_pack("{s:{s:s,s:o},s:s}", "attestation", "type", "x509",
                   "x509", x509, "provisioningStatus",
                   status ? status : "enabled");
}

struct outcome {
  int status;
  char code[64];
  char msg[256];
  json_t *state; /* registrationState.x509, or NULL */
  uint32_t depth;
};

/* Takes enr.  parsed: the chain as the TLS layer hands it over (ABI
 * 1.10), or NULL for PEM only. */
static struct outcome attest_with(json_t *enr, int is_group,
                                  const char *reg_id, const char *chain_pem,
                                  STACK_OF(X509) *parsed)
{
  struct provd_attest_request req = {
      .struct_size = sizeof(req),
      .id_scope = "0ne00000001",
      .registration_id = reg_id,
      .mechanism = "x509",
      .enrollment = cfg_from_json(enr),
      .is_group = is_group,
      .enrollment_id = is_group ? "group-1" : reg_id,
      .client_cert_chain_pem = chain_pem,
      .now_unix = NOW,
      .client_cert_chain = parsed,
  };
  struct provd_attest_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err = {{0}, {0}};
  struct outcome o = {0};
  o.status = ops->attest(in.state, NULL, &req, &res, &err);
  memcpy(o.code, err.code, sizeof(o.code));
  snprintf(o.msg, sizeof(o.msg), "%s", err.msg);
  if (res.state) {
    ck_assert_str_eq(res.state_key, "x509");
    o.state = json_incref(res.state);
  }
  o.depth = res.match_depth;
  attest_result_clear(&res);
  json_decref(enr);
  return o;
}

static struct outcome attest(json_t *enr, int is_group, const char *reg_id,
                             const char *chain_pem)
{
  return attest_with(enr, is_group, reg_id, chain_pem, NULL);
}

static void outcome_is(struct outcome o, int status, const char *code)
{
  ck_assert_msg(o.status == status && strcmp(o.code, code) == 0,
                "status %d (%s: %s), expected %d (%s)", o.status, o.code,
                o.msg, status, code);
  json_decref(o.state);
}

static struct outcome group_of(X509 *anchor, const char *reg_id,
                               const char *chain)
{
  char *a = pem1(anchor);
  struct outcome o = attest(enrollment("signingCertificates", a, NULL, NULL,
                                       NULL),
                            1, reg_id, chain);
  free(a);
  return o;
}

static const char *info_field(json_t *state, const char *info,
                              const char *field)
{
  return json_string_value(
      json_object_get(json_object_get(state, info), field));
}

/* ---- individual enrollments ---- */

START_TEST(t_individual_self_signed)
{
  struct cred self = make("dev-self", 0, NULL, "critical,CA:FALSE", -1, 30, 7);
  char *p = pem1(self.cert);
  struct outcome o = attest(enrollment("clientCertificates", p, NULL, NULL,
                                       NULL),
                            0, "dev-self", p);
  ck_assert_msg(o.status == PROVD_OK, "%s: %s", o.code, o.msg);
  ck_assert_ptr_nonnull(o.state);
  char sha256[65];
  unsigned char d[32];
  unsigned int n = 0;
  X509_digest(self.cert, EVP_sha256(), d, &n);
  for (unsigned i = 0; i < n; i++)
    snprintf(sha256 + 2 * i, 3, "%02X", d[i]);
  ck_assert_str_eq(info_field(o.state, "certificateInfo", "sha256Thumbprint"),
                   sha256);
  ck_assert_str_eq(info_field(o.state, "certificateInfo", "subjectName"),
                   "CN=dev-self, O=provd tests");
  ck_assert_str_eq(info_field(o.state, "certificateInfo", "serialNumber"),
                   "07");
  ck_assert_int_eq(json_integer_value(json_object_get(
                       json_object_get(o.state, "certificateInfo"),
                       "version")),
                   3);
  ck_assert_ptr_null(json_object_get(o.state, "signingCertificateInfo"));
  ck_assert_ptr_null(json_object_get(o.state, "enrollmentGroupId"));
  json_decref(o.state);
  free(p);
  cred_free(&self);
}
END_TEST

/* The secondary slot, stored as base64 DER instead of PEM. */
START_TEST(t_individual_secondary_der)
{
  unsigned char *der = NULL;
  int len = i2d_X509(leaf.cert, &der);
  ck_assert_int_gt(len, 0);
  char *b64 = b64_encode(der, (size_t)len);
  OPENSSL_free(der);
  char *other = pem1(leaf_rsa.cert);
  char *chain = pem2(leaf.cert, inter.cert);
  outcome_is(attest(enrollment("clientCertificates", other, b64, NULL, NULL),
                    0, "dev-1", chain),
             PROVD_OK, "");
  free(b64);
  free(other);
  free(chain);
}
END_TEST

START_TEST(t_individual_other_certificate)
{
  char *enrolled = pem1(leaf.cert);
  char *presented = pem1(other_leaf.cert); /* same CN, other key */
  outcome_is(attest(enrollment("clientCertificates", enrolled, NULL, NULL,
                               NULL),
                    0, "dev-1", presented),
             PROVD_DENIED, "CERT_UNTRUSTED");
  free(enrolled);
  free(presented);
}
END_TEST

/* A disabled individual enrollment blocks its id, whatever the device
 * shows (here a certificate its enabled group would accept). */
START_TEST(t_disabled_individual_blocks_group_device)
{
  struct cred other_dev = make("dev-1", 0, NULL, "critical,CA:FALSE", -1, 30,
                               9);
  char *enrolled = pem1(other_dev.cert);
  char *chain = pem2(leaf.cert, inter.cert);
  outcome_is(attest(enrollment("clientCertificates", enrolled, NULL, NULL,
                               "disabled"),
                    0, "dev-1", chain),
             PROVD_DENIED, "ENROLLMENT_DISABLED");
  free(enrolled);
  free(chain);
  cred_free(&other_dev);
}
END_TEST

START_TEST(t_cn_mismatch)
{
  char *chain = pem2(leaf.cert, inter.cert);
  outcome_is(group_of(root.cert, "dev-2", chain), PROVD_DENIED,
             "CERT_CN_MISMATCH");
  char *p = pem1(leaf.cert);
  outcome_is(attest(enrollment("clientCertificates", p, NULL, NULL, NULL), 0,
                    "dev-2", p),
             PROVD_DENIED, "CERT_CN_MISMATCH");
  free(p);
  free(chain);
}
END_TEST

START_TEST(t_expired_and_not_yet_valid)
{
  struct cred old = make("dev-old", 0, &inter, "critical,CA:FALSE", -400, -1,
                         11);
  struct cred early = make("dev-early", 0, &inter, "critical,CA:FALSE", 2, 30,
                           12);
  char *c1 = pem2(old.cert, inter.cert), *c2 = pem2(early.cert, inter.cert);
  outcome_is(group_of(root.cert, "dev-old", c1), PROVD_DENIED,
             "CERT_EXPIRED");
  outcome_is(group_of(root.cert, "dev-early", c2), PROVD_DENIED,
             "CERT_NOT_YET_VALID");
  char *self = pem1(old.cert);
  outcome_is(attest(enrollment("clientCertificates", self, NULL, NULL, NULL),
                    0, "dev-old", self),
             PROVD_DENIED, "CERT_EXPIRED");
  free(self);
  free(c1);
  free(c2);
  cred_free(&old);
  cred_free(&early);
}
END_TEST

START_TEST(t_missing_or_unusable_chain)
{
  char *p = pem1(root.cert);
  outcome_is(group_of(root.cert, "dev-1", NULL), PROVD_DENIED,
             "CERT_MISSING");
  outcome_is(group_of(root.cert, "dev-1", "-----BEGIN CERTIFICATE-----\nx\n"),
             PROVD_DENIED, "CERT_MISSING");
  X509 *many[11];
  many[0] = leaf.cert;
  for (int i = 1; i < 11; i++)
    many[i] = inter.cert;
  char *long_chain = pem_of(many, 11); /* max_chain_length is 10 */
  outcome_is(group_of(root.cert, "dev-1", long_chain), PROVD_DENIED,
             "CERT_MISSING");
  free(long_chain);
  free(p);
}
END_TEST

/* ---- groups ---- */

START_TEST(t_group_root_full_chain)
{
  char *chain = pem2(leaf.cert, inter.cert);
  struct outcome o = group_of(root.cert, "dev-1", chain);
  ck_assert_msg(o.status == PROVD_OK, "%s: %s", o.code, o.msg);
  ck_assert_uint_eq(o.depth, 2);
  ck_assert_str_eq(json_string_value(
                       json_object_get(o.state, "enrollmentGroupId")),
                   "group-1");
  ck_assert_str_eq(info_field(o.state, "signingCertificateInfo",
                              "subjectName"),
                   "CN=Test Root, O=provd tests");
  ck_assert_str_eq(info_field(o.state, "certificateInfo", "issuerName"),
                   "CN=Test Intermediate, O=provd tests");
  ck_assert_str_eq(info_field(o.state, "certificateInfo", "notBeforeUtc"),
                   "2027-01-14T08:00:00Z"); /* NOW - 1 day */
  /* The next device of the group finds the root parsed and described. */
  struct outcome again = group_of(root.cert, "dev-1", chain);
  ck_assert_msg(again.status == PROVD_OK, "%s: %s", again.code, again.msg);
  ck_assert(json_equal(json_object_get(again.state, "signingCertificateInfo"),
                       json_object_get(o.state, "signingCertificateInfo")));
  json_decref(again.state);
  json_decref(o.state);
  free(chain);
}
END_TEST

START_TEST(t_group_rsa_chain)
{
  char *chain = pem2(leaf_rsa.cert, inter_rsa.cert);
  struct outcome o = group_of(root_rsa.cert, "dev-rsa", chain);
  ck_assert_msg(o.status == PROVD_OK, "%s: %s", o.code, o.msg);
  ck_assert_uint_eq(o.depth, 2);
  json_decref(o.state);
  free(chain);
}
END_TEST

/* The chain as the handshake parsed it decides, without the PEM: the same
 * answer and state as from the PEM text, the same limits. */
static STACK_OF(X509) *stack_of(X509 *const *certs, int n)
{
  STACK_OF(X509) *sk = sk_X509_new_null();
  for (int i = 0; i < n; i++)
    ck_assert(sk_X509_push(sk, certs[i]) > 0); /* borrowed, not up-ref'd */
  return sk;
}

START_TEST(t_parsed_chain_from_tls)
{
  X509 *certs[] = {leaf.cert, inter.cert};
  STACK_OF(X509) *sk = stack_of(certs, 2);
  char *a = pem1(root.cert);
  struct outcome o = attest_with(
      enrollment("signingCertificates", a, NULL, NULL, NULL), 1, "dev-1",
      NULL, sk);
  ck_assert_msg(o.status == PROVD_OK, "%s: %s", o.code, o.msg);
  ck_assert_uint_eq(o.depth, 2);
  ck_assert_str_eq(info_field(o.state, "certificateInfo", "issuerName"),
                   "CN=Test Intermediate, O=provd tests");
  json_decref(o.state);
  /* The leaf alone does not reach the root, whatever the PEM says. */
  char *full = pem2(leaf.cert, inter.cert);
  STACK_OF(X509) *leaf_only = stack_of(certs, 1);
  outcome_is(attest_with(enrollment("signingCertificates", a, NULL, NULL,
                                    NULL),
                         1, "dev-1", full, leaf_only),
             PROVD_DECLINED, "CERT_UNTRUSTED");
  X509 *many[11];
  many[0] = leaf.cert;
  for (int i = 1; i < 11; i++)
    many[i] = inter.cert;
  STACK_OF(X509) *too_long = stack_of(many, 11); /* max_chain_length 10 */
  outcome_is(attest_with(enrollment("signingCertificates", a, NULL, NULL,
                                    NULL),
                         1, "dev-1", NULL, too_long),
             PROVD_DENIED, "CERT_MISSING");
  /* The plugin took its own references: ours are untouched. */
  ck_assert_int_eq(sk_X509_num(sk), 2);
  sk_X509_free(too_long);
  sk_X509_free(leaf_only);
  sk_X509_free(sk);
  free(full);
  free(a);
}
END_TEST

/* Only the root is enrolled: the device must send the intermediate. */
START_TEST(t_group_root_leaf_only)
{
  char *p = pem1(leaf.cert);
  outcome_is(group_of(root.cert, "dev-1", p), PROVD_DECLINED,
             "CERT_UNTRUSTED");
  free(p);
}
END_TEST

START_TEST(t_group_intermediate_leaf_only)
{
  char *p = pem1(leaf.cert);
  struct outcome o = group_of(inter.cert, "dev-1", p);
  ck_assert_msg(o.status == PROVD_OK, "%s: %s", o.code, o.msg);
  ck_assert_uint_eq(o.depth, 1);
  ck_assert_str_eq(info_field(o.state, "signingCertificateInfo",
                              "subjectName"),
                   "CN=Test Intermediate, O=provd tests");
  json_decref(o.state);
  free(p);
}
END_TEST

START_TEST(t_group_other_ca)
{
  char *chain = pem2(other_leaf.cert, other_inter.cert);
  outcome_is(group_of(root.cert, "dev-1", chain), PROVD_DECLINED,
             "CERT_UNTRUSTED");
  /* Same issuer name, other key: the signature does not verify. */
  char *p = pem1(other_leaf.cert);
  outcome_is(group_of(inter.cert, "dev-1", p), PROVD_DENIED,
             "CERT_UNTRUSTED");
  free(p);
  free(chain);
}
END_TEST

START_TEST(t_group_revoked_by_crl)
{
  char *chain = pem2(leaf.cert, inter.cert);
  char *anchor = pem1(root.cert);
  char *revoking = crl_pem(&inter, 100), *other = crl_pem(&inter, 101);
  outcome_is(attest(enrollment("signingCertificates", anchor, NULL, revoking,
                               NULL),
                    1, "dev-1", chain),
             PROVD_DENIED, "CERT_REVOKED");
  outcome_is(attest(enrollment("signingCertificates", anchor, NULL, other,
                               NULL),
                    1, "dev-1", chain),
             PROVD_OK, "");
  free(chain);
  free(anchor);
  free(revoking);
  free(other);
}
END_TEST

/* root (pathlen:0) -> inter -> inter2 -> leaf: one CA too many. */
START_TEST(t_path_length_exceeded)
{
  struct cred r = make("Short Root", 0, NULL, "critical,CA:TRUE,pathlen:0",
                       -10, 3650, 1);
  struct cred i1 = make("Short I1", 0, &r, "critical,CA:TRUE", -10, 3650, 2);
  struct cred i2 = make("Short I2", 0, &i1, "critical,CA:TRUE", -10, 3650, 3);
  struct cred l = make("dev-deep", 0, &i2, "critical,CA:FALSE", -1, 30, 4);
  X509 *certs[3] = {l.cert, i2.cert, i1.cert};
  char *chain = pem_of(certs, 3);
  outcome_is(group_of(r.cert, "dev-deep", chain), PROVD_DENIED,
             "CERT_UNTRUSTED");
  free(chain);
  cred_free(&r);
  cred_free(&i1);
  cred_free(&i2);
  cred_free(&l);
}
END_TEST

/* A certificate with CA:FALSE signed the leaf. */
START_TEST(t_ca_false_signer)
{
  struct cred not_ca = make("Not A CA", 0, &root, "critical,CA:FALSE", -10,
                            3650, 5);
  struct cred l = make("dev-x", 0, &not_ca, "critical,CA:FALSE", -1, 30, 6);
  char *chain = pem2(l.cert, not_ca.cert);
  outcome_is(group_of(root.cert, "dev-x", chain), PROVD_DENIED,
             "CERT_UNTRUSTED");
  free(chain);
  cred_free(&not_ca);
  cred_free(&l);
}
END_TEST

static Suite *x509_suite(void)
{
  Suite *s = suite_create("x509");
  TCase *tc = tcase_create("attest");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, t_individual_self_signed);
  tcase_add_test(tc, t_individual_secondary_der);
  tcase_add_test(tc, t_individual_other_certificate);
  tcase_add_test(tc, t_disabled_individual_blocks_group_device);
  tcase_add_test(tc, t_cn_mismatch);
  tcase_add_test(tc, t_expired_and_not_yet_valid);
  tcase_add_test(tc, t_missing_or_unusable_chain);
  tcase_add_test(tc, t_group_root_full_chain);
  tcase_add_test(tc, t_group_rsa_chain);
  tcase_add_test(tc, t_group_root_leaf_only);
  tcase_add_test(tc, t_parsed_chain_from_tls);
  tcase_add_test(tc, t_group_intermediate_leaf_only);
  tcase_add_test(tc, t_group_other_ca);
  tcase_add_test(tc, t_group_revoked_by_crl);
  tcase_add_test(tc, t_path_length_exceeded);
  tcase_add_test(tc, t_ca_false_signer);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(x509_suite());
  srunner_set_fork_status(sr, CK_NOFORK); /* one set of keys for all */
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
