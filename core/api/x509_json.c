#include "api/x509_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

int x509_attestation_normalize(enum enrollment_kind kind, json_t *att,
                               struct provd_err *err)
{
  json_t *x509 = json_object_get(att, "x509");
  if (!json_is_object(x509))
    return invalid(err, "%s must be an object", "attestation.x509");
  if (present(x509, "caReferences"))
    return invalid(err, "%s: CAs registered on the instance are not "
                        "supported yet; give signingCertificates",
                   "attestation.x509.caReferences");
  if (kind == ENROLLMENT_INDIVIDUAL) {
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
  int rc = check_cert_list(x509, "signingCertificates", 1, err);
  return rc == PROVD_OK ? check_crl(x509, err) : rc;
}
