#include "api/x509_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "provd/plugin.h"
#include "util/b64.h"

#define PEM_BLOCK_MAX 4 /* blocks looked at before giving up */

static int invalid(struct provd_err *err, const char *fmt, const char *a)
{
  perr_set(err, "INVALID_ENROLLMENT", fmt, a);
  return PROVD_E_INVAL;
}

/* ---- parsing: exactly one object, nothing else ---- */

/* PEM text holding exactly one block named `want` ("CERTIFICATE",
 * "X509 CRL"); its DER in *der (caller frees).  0, or -1 with *why set. */
static int single_pem_block(const char *text, const char *want,
                            unsigned char **der, long *der_len,
                            const char **why)
{
  BIO *mem = BIO_new_mem_buf(text, (int)strlen(text));
  char *name = NULL, *header = NULL;
  unsigned char *data = NULL;
  long len = 0;
  int blocks = 0, rc = -1;
  *why = "is not PEM";
  while (mem && blocks < PEM_BLOCK_MAX &&
         PEM_read_bio(mem, &name, &header, &data, &len) == 1) {
    blocks++;
    if (blocks == 1 && strcmp(name, want) == 0) {
      *der = data;
      *der_len = len;
      data = NULL;
      rc = 0;
    } else if (blocks == 1) {
      *why = strstr(name, "PRIVATE KEY") ? "is a private key, not a "
                                           "certificate"
                                         : "holds another kind of PEM block";
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    name = header = NULL;
    data = NULL;
  }
  ERR_clear_error();
  BIO_free(mem);
  if (rc == 0 && blocks > 1) {
    OPENSSL_free(*der);
    *der = NULL;
    *why = "must hold exactly one PEM block (a chain is not accepted)";
    rc = -1;
  }
  return rc;
}

/* PEM, or base64 DER (DPS accepts both).  *der is OPENSSL_free'd. */
static int text_der(const char *text, const char *pem_name,
                    unsigned char **der, long *der_len, const char **why)
{
  if (strstr(text, "-----BEGIN"))
    return single_pem_block(text, pem_name, der, der_len, why);
  size_t cap = strlen(text), n = 0;
  unsigned char *buf = OPENSSL_malloc(cap + 1);
  if (!buf || b64_decode(text, buf, cap + 1, &n) < 0 || n == 0) {
    OPENSSL_free(buf);
    *why = "is neither PEM nor base64 DER";
    return -1;
  }
  *der = buf;
  *der_len = (long)n;
  return 0;
}

static X509 *cert_parse(const char *text, const char **why)
{
  unsigned char *der = NULL;
  long len = 0;
  if (text_der(text, PEM_STRING_X509, &der, &len, why) != 0)
    return NULL;
  const unsigned char *p = der;
  X509 *cert = d2i_X509(NULL, &p, len);
  if (cert && p != der + len) {
    X509_free(cert);
    cert = NULL;
  }
  OPENSSL_free(der);
  ERR_clear_error();
  if (!cert)
    *why = "is not an X.509 certificate";
  return cert;
}

static X509_CRL *crl_parse(const char *text, const char **why)
{
  unsigned char *der = NULL;
  long len = 0;
  if (text_der(text, PEM_STRING_X509_CRL, &der, &len, why) != 0)
    return NULL;
  const unsigned char *p = der;
  X509_CRL *crl = d2i_X509_CRL(NULL, &p, len);
  OPENSSL_free(der);
  ERR_clear_error();
  if (!crl)
    *why = "is not an X.509 CRL";
  return crl;
}

/* ---- X509CertificateInfo ---- */

static json_t *name_json(const X509_NAME *name)
{
  BIO *mem = BIO_new(BIO_s_mem());
  unsigned long flags = (XN_FLAG_RFC2253 & ~XN_FLAG_SEP_MASK &
                         ~(unsigned long)ASN1_STRFLGS_ESC_MSB) |
                        XN_FLAG_SEP_CPLUS_SPC;
  json_t *out = NULL;
  char *data = NULL;
  if (mem && X509_NAME_print_ex(mem, name, 0, flags) >= 0) {
    long len = BIO_get_mem_data(mem, &data);
    out = json_stringn(data, len > 0 ? (size_t)len : 0);
  }
  BIO_free(mem);
  return out ? out : json_string("");
}

static json_t *time_json(const ASN1_TIME *t)
{
  struct tm tm;
  char text[32] = "";
  if (t && ASN1_TIME_to_tm(t, &tm) == 1)
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(text);
}

static json_t *digest_json(const X509 *cert, const EVP_MD *md)
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
  if (X509_digest(cert, md, d, &n))
    for (unsigned int i = 0; i < n; i++)
      snprintf(hex + 2 * i, 3, "%02X", d[i]);
  return json_string(hex);
}

static json_t *serial_json(const X509 *cert)
{
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  json_t *out = json_string(hex ? hex : "");
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

static json_t *cert_info(const X509 *cert)
{
  return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "subjectName",
                   name_json(X509_get_subject_name(cert)), "sha1Thumbprint",
                   digest_json(cert, EVP_sha1()), "sha256Thumbprint",
                   digest_json(cert, EVP_sha256()), "issuerName",
                   name_json(X509_get_issuer_name(cert)), "notBeforeUtc",
                   time_json(X509_get0_notBefore(cert)), "notAfterUtc",
                   time_json(X509_get0_notAfter(cert)), "serialNumber",
                   serial_json(cert), "version",
                   (json_int_t)X509_get_version(cert) + 1);
}

/* ---- the document ---- */

/* One X509CertificateWithInfo: {"certificate": text} -> + "info". */
static int check_cert_slot(json_t *slot, const char *where, int must_be_ca,
                           struct provd_err *err)
{
  char label[96];
  if (!json_is_object(slot))
    return invalid(err, "%s must be an object with a certificate", where);
  snprintf(label, sizeof(label), "%s.certificate", where);
  const char *text = json_string_value(json_object_get(slot, "certificate"));
  if (!text || !*text)
    return invalid(err, "%s is required (PEM or base64 DER)", label);
  if (strlen(text) > X509_JSON_CERT_MAX)
    return invalid(err, "%s is longer than 64 KiB", label);
  const char *why = NULL;
  X509 *cert = cert_parse(text, &why);
  if (!cert) {
    perr_set(err, "INVALID_ENROLLMENT", "%s %s", label, why);
    return PROVD_E_INVAL;
  }
  if (must_be_ca && X509_check_ca(cert) < 1) {
    X509_free(cert);
    return invalid(err, "%s is not a CA certificate (basicConstraints "
                        "CA:TRUE)", label);
  }
  json_t *info = cert_info(cert);
  X509_free(cert);
  if (!info || json_object_set_new(slot, "info", info) != 0)
    return invalid(err, "%s: out of memory", label);
  return PROVD_OK;
}

/* <list>.primary (required) and .secondary (optional). */
static int check_cert_list(json_t *x509, const char *list, int must_be_ca,
                           struct provd_err *err)
{
  static const char *const which[] = {"primary", "secondary"};
  char where[96];
  json_t *l = json_object_get(x509, list);
  snprintf(where, sizeof(where), "attestation.x509.%s", list);
  if (!json_is_object(l))
    return invalid(err, "%s must be an object with a primary certificate",
                   where);
  for (size_t i = 0; i < 2; i++) {
    json_t *slot = json_object_get(l, which[i]);
    if (!slot || json_is_null(slot)) {
      json_object_del(l, which[i]);
      if (i == 0)
        return invalid(err, "%s.primary is required", where);
      continue;
    }
    snprintf(where, sizeof(where), "attestation.x509.%s.%s", list, which[i]);
    int rc = check_cert_slot(slot, where, must_be_ca, err);
    if (rc != PROVD_OK)
      return rc;
  }
  return PROVD_OK;
}

static int check_crl(json_t *x509, struct provd_err *err)
{
  json_t *v = json_object_get(x509, "crl");
  if (!v || json_is_null(v)) {
    json_object_del(x509, "crl");
    return PROVD_OK;
  }
  const char *text = json_string_value(v);
  if (!text || !*text)
    return invalid(err, "%s must be a PEM or base64 DER CRL",
                   "attestation.x509.crl");
  if (strlen(text) > X509_JSON_CRL_MAX)
    return invalid(err, "%s is longer than 512 KiB", "attestation.x509.crl");
  const char *why = NULL;
  X509_CRL *crl = crl_parse(text, &why);
  if (!crl) {
    perr_set(err, "INVALID_ENROLLMENT", "attestation.x509.crl %s", why);
    return PROVD_E_INVAL;
  }
  X509_CRL_free(crl);
  return PROVD_OK;
}

static int present(json_t *x509, const char *name)
{
  json_t *v = json_object_get(x509, name);
  if (v && json_is_null(v)) {
    json_object_del(x509, name);
    return 0;
  }
  return v != NULL;
}

/* caReferences: {"primary": name, "secondary"?: name}. */
static int check_ca_references(json_t *x509, struct provd_err *err)
{
  json_t *refs = json_object_get(x509, "caReferences");
  if (!json_is_object(refs))
    return invalid(err, "%s must be an object",
                   "attestation.x509.caReferences");
  if (present(x509, "signingCertificates") || present(x509, "crl"))
    return invalid(err, "%s: give caReferences or signingCertificates (and "
                        "crl), not both; a registered CA carries its own CRL",
                   "attestation.x509");
  const char *primary = json_string_value(json_object_get(refs, "primary"));
  json_t *secondary = json_object_get(refs, "secondary");
  if (!primary || !enrollment_id_valid(primary))
    return invalid(err, "%s must name a registered CA",
                   "attestation.x509.caReferences.primary");
  if (secondary && json_is_null(secondary))
    json_object_del(refs, "secondary");
  else if (secondary && (!json_is_string(secondary) ||
                         !enrollment_id_valid(json_string_value(secondary))))
    return invalid(err, "%s must name a registered CA",
                   "attestation.x509.caReferences.secondary");
  return PROVD_OK;
}

int x509_attestation_normalize(enum enrollment_kind kind, json_t *att,
                               struct provd_err *err)
{
  json_t *x509 = json_object_get(att, "x509");
  if (!json_is_object(x509))
    return invalid(err, "%s must be an object", "attestation.x509");
  if (kind == ENROLLMENT_INDIVIDUAL) {
    if (present(x509, "caReferences"))
      return invalid(err, "%s: caReferences are for enrollment groups",
                     "attestation.x509");
    if (present(x509, "signingCertificates") || present(x509, "crl"))
      return invalid(err, "%s: an individual enrollment holds the device "
                          "certificate in clientCertificates",
                     "attestation.x509");
    return check_cert_list(x509, "clientCertificates", 0, err);
  }
  if (present(x509, "clientCertificates"))
    return invalid(err, "%s: an enrollment group holds its CA in "
                        "signingCertificates",
                   "attestation.x509");
  if (present(x509, "caReferences"))
    return check_ca_references(x509, err);
  int rc = check_cert_list(x509, "signingCertificates", 1, err);
  return rc == PROVD_OK ? check_crl(x509, err) : rc;
}

/* ---- registered CAs ---- */

/* The CRL as PEM text (caller frees), whatever form it came in. */
static char *crl_pem_text(const X509_CRL *crl)
{
  BIO *mem = BIO_new(BIO_s_mem());
  char *data = NULL, *out = NULL;
  if (mem && PEM_write_bio_X509_CRL(mem, (X509_CRL *)crl)) {
    long len = BIO_get_mem_data(mem, &data);
    out = len > 0 ? strndup(data, (size_t)len) : NULL;
  }
  BIO_free(mem);
  return out;
}

int x509_ca_normalize(json_t *doc, const char *name, struct provd_err *err)
{
  if (!json_is_object(doc))
    return invalid(err, "%s must be a JSON object", "the certificate");
  const char *given = json_string_value(json_object_get(doc, "name"));
  if (given && strcasecmp(given, name) != 0)
    return invalid(err, "name must be the name in the path (%s)", name);
  int rc = check_cert_slot(doc, "certificate", 1, err);
  if (rc != PROVD_OK)
    return rc;
  json_t *crl_v = json_object_get(doc, "crl");
  if (crl_v && !json_is_null(crl_v)) {
    const char *text = json_string_value(crl_v), *why = NULL;
    if (!text || strlen(text) > X509_JSON_CRL_MAX)
      return invalid(err, "%s must be a PEM or base64 DER CRL of at most "
                          "512 KiB", "crl");
    X509_CRL *crl = crl_parse(text, &why);
    if (!crl) {
      perr_set(err, "INVALID_ENROLLMENT", "crl %s", why);
      return PROVD_E_INVAL;
    }
    char *pem = crl_pem_text(crl);
    X509_CRL_free(crl);
    if (!pem)
      return invalid(err, "%s: out of memory", "crl");
    json_object_set_new(doc, "crl", json_string(pem));
    free(pem);
  } else {
    json_object_del(doc, "crl");
  }
  json_object_set_new(doc, "name", json_string(name));
  json_object_set_new(doc, "isVerified", json_false());
  json_object_del(doc, "verificationCode");
  return PROVD_OK;
}

void x509_ca_keep_verification(json_t *doc, const json_t *old)
{
  const char *before = json_string_value(json_object_get(
      json_object_get(old, "info"), "sha256Thumbprint"));
  const char *now = json_string_value(json_object_get(
      json_object_get(doc, "info"), "sha256Thumbprint"));
  if (!before || !now || strcmp(before, now) != 0)
    return;
  json_object_set(doc, "isVerified", json_object_get(old, "isVerified"));
  json_t *code = json_object_get(old, "verificationCode");
  if (code)
    json_object_set(doc, "verificationCode", code);
}

int x509_ca_new_code(json_t *doc)
{
  unsigned char raw[X509_CA_CODE_CHARS / 2];
  char hex[X509_CA_CODE_CHARS + 1];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return PROVD_E_INTERNAL;
  for (size_t i = 0; i < sizeof(raw); i++)
    snprintf(hex + 2 * i, 3, "%02X", raw[i]);
  return json_object_set_new(doc, "verificationCode", json_string(hex)) == 0
             ? PROVD_OK
             : PROVD_E_NOMEM;
}

/* 1 when the certificate's only subject CN is `code`. */
static int subject_cn_is(X509 *cert, const char *code)
{
  X509_NAME *name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0)
    return 0;
  unsigned char *cn = NULL;
  int n = ASN1_STRING_to_UTF8(
      &cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
  int same = n >= 0 && (size_t)n == strlen(code) &&
             strncasecmp((const char *)cn, code, (size_t)n) == 0;
  OPENSSL_free(cn);
  return same;
}

int x509_ca_verify_proof(json_t *doc, const char *proof_text,
                         struct provd_err *err)
{
  const char *code = json_string_value(json_object_get(doc,
                                                       "verificationCode"));
  const char *ca_text = json_string_value(json_object_get(doc, "certificate"));
  if (!code)
    return invalid(err, "%s: ask for a verification code first",
                   "the certificate");
  if (!proof_text || strlen(proof_text) > X509_JSON_CERT_MAX)
    return invalid(err, "%s is required (PEM or base64 DER, at most 64 KiB)",
                   "certificate");
  const char *why = NULL;
  X509 *proof = cert_parse(proof_text, &why);
  X509 *ca = ca_text ? cert_parse(ca_text, &why) : NULL;
  EVP_PKEY *ca_key = ca ? X509_get0_pubkey(ca) : NULL;
  int rc = PROVD_OK;
  if (!proof)
    rc = invalid(err, "the proof %s", why);
  else if (!ca_key)
    rc = invalid(err, "%s: the stored CA certificate is unusable",
                 "the certificate");
  else if (!subject_cn_is(proof, code))
    rc = invalid(err, "the proof's subject CN must be the verification "
                      "code %s", code);
  else if (X509_verify(proof, ca_key) != 1)
    rc = invalid(err, "%s: the proof is not signed by the CA's key",
                 "proof of possession failed");
  ERR_clear_error();
  X509_free(proof);
  X509_free(ca);
  if (rc == PROVD_OK) {
    json_object_set_new(doc, "isVerified", json_true());
    json_object_del(doc, "verificationCode");
  }
  return rc;
}

const char *x509_ca_reference(const json_t *group, const char *which)
{
  const json_t *x509 = json_object_get(json_object_get(group, "attestation"),
                                       "x509");
  return json_string_value(
      json_object_get(json_object_get(x509, "caReferences"), which));
}
