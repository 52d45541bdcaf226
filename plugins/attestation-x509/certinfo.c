/* X509CertificateInfo as DPS prints it (registrationState.x509):
 * subjectName, sha1Thumbprint, sha256Thumbprint, issuerName, notBeforeUtc,
 * notAfterUtc, serialNumber, version. */
#include "certinfo.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>

#define NAME_MAX_CHARS 1024

/* Appends to a bounded buffer; a write that does not fit marks it full
 * (the caller then gives up: no truncated JSON leaves here). */
struct text {
  char *buf;
  size_t cap, len;
  int full;
};

static void put(struct text *t, const char *s, size_t n)
{
  if (t->full || n >= t->cap - t->len) {
    t->full = 1;
    return;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

static void puts_raw(struct text *t, const char *s)
{
  put(t, s, strlen(s));
}

/* A JSON string: quotes, backslashes and control bytes escaped; UTF-8
 * passes through. */
static void put_json_string(struct text *t, const char *s, size_t n)
{
  put(t, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(t, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      put(t, esc, 6);
    } else {
      put(t, (const char *)&s[i], 1);
    }
  }
  put(t, "\"", 1);
}

static void put_field(struct text *t, const char *name, const char *value,
                      size_t n, int first)
{
  if (!first)
    put(t, ",", 1);
  put_json_string(t, name, strlen(name));
  put(t, ":", 1);
  put_json_string(t, value, n);
}

/* "CN=leaf, O=Example": most specific first, as DPS prints names. */
static int name_text(const X509_NAME *name, char *out, size_t cap)
{
  BIO *mem = BIO_new(BIO_s_mem());
  unsigned long flags = (XN_FLAG_RFC2253 & ~XN_FLAG_SEP_MASK &
                         ~(unsigned long)ASN1_STRFLGS_ESC_MSB) |
                        XN_FLAG_SEP_CPLUS_SPC;
  int ok = mem && X509_NAME_print_ex(mem, name, 0, flags) >= 0;
  char *data = NULL;
  long len = ok ? BIO_get_mem_data(mem, &data) : 0;
  ok = ok && len >= 0 && (size_t)len < cap;
  if (ok) {
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
  }
  BIO_free(mem);
  return ok ? 0 : -1;
}

static int time_text(const ASN1_TIME *t, char out[32])
{
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
    return -1;
  return strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0 ? 0 : -1;
}

int certinfo_thumbprint(const X509 *cert, const EVP_MD *md, char *hex,
                        size_t cap)
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!X509_digest(cert, md, d, &n) || cap < 2 * (size_t)n + 1)
    return -1;
  static const char digits[] = "0123456789ABCDEF";
  for (unsigned int i = 0; i < n; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * n] = '\0';
  return 0;
}

static int serial_text(const X509 *cert, char *out, size_t cap)
{
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  int ok = hex && strlen(hex) < cap;
  if (ok)
    memcpy(out, hex, strlen(hex) + 1);
  OPENSSL_free(hex);
  BN_free(bn);
  return ok ? 0 : -1;
}

int certinfo_json(const X509 *cert, char *out, size_t cap)
{
  char subject[NAME_MAX_CHARS], issuer[NAME_MAX_CHARS], sha1[64], sha256[96],
      not_before[32], not_after[32], serial[128], version[16];
  if (name_text(X509_get_subject_name(cert), subject, sizeof(subject)) ||
      name_text(X509_get_issuer_name(cert), issuer, sizeof(issuer)) ||
      certinfo_thumbprint(cert, EVP_sha1(), sha1, sizeof(sha1)) ||
      certinfo_thumbprint(cert, EVP_sha256(), sha256, sizeof(sha256)) ||
      time_text(X509_get0_notBefore(cert), not_before) ||
      time_text(X509_get0_notAfter(cert), not_after) ||
      serial_text(cert, serial, sizeof(serial)))
    return -1;
  snprintf(version, sizeof(version), "%ld", X509_get_version(cert) + 1);
  struct text t = {out, cap, 0, cap == 0};
  if (cap)
    out[0] = '\0';
  puts_raw(&t, "{");
  put_field(&t, "subjectName", subject, strlen(subject), 1);
  put_field(&t, "sha1Thumbprint", sha1, strlen(sha1), 0);
  put_field(&t, "sha256Thumbprint", sha256, strlen(sha256), 0);
  put_field(&t, "issuerName", issuer, strlen(issuer), 0);
  put_field(&t, "notBeforeUtc", not_before, strlen(not_before), 0);
  put_field(&t, "notAfterUtc", not_after, strlen(not_after), 0);
  put_field(&t, "serialNumber", serial, strlen(serial), 0);
  puts_raw(&t, ",\"version\":");
  puts_raw(&t, version);
  puts_raw(&t, "}");
  return t.full ? -1 : 0;
}

int certinfo_state_json(const X509 *leaf, const char *signer_info,
                        const char *group_id, char *out, size_t cap)
{
  struct text t = {out, cap, 0, cap == 0};
  char leaf_info[CERTINFO_JSON_MAX];
  if (certinfo_json(leaf, leaf_info, sizeof(leaf_info)))
    return -1;
  if (cap)
    out[0] = '\0';
  puts_raw(&t, "{\"certificateInfo\":");
  puts_raw(&t, leaf_info);
  if (group_id) {
    puts_raw(&t, ",\"enrollmentGroupId\":");
    put_json_string(&t, group_id, strlen(group_id));
  }
  if (signer_info) {
    puts_raw(&t, ",\"signingCertificateInfo\":");
    puts_raw(&t, signer_info);
  }
  puts_raw(&t, "}");
  return t.full ? -1 : 0;
}
