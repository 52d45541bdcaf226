/* The device side of DPS certificate issuance: a CSR from the device's
 * key, and the issued chain written as PEM. */
#include "provd_device.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "util/b64.h"
#include "util/pemkey.h"

#define MAX_CERT_DER 16384
#define MAX_CHAIN 16

/* A new P-384 key written to path (which must not exist), mode 0600. */
static EVP_PKEY *generate_key_file(const char *path, struct provd_err *err)
{
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  int fd = key ? open(path, O_WRONLY | O_CREAT | O_EXCL, 0600) : -1;
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  int ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  if (f)
    ok = fclose(f) == 0 && ok;
  else if (fd >= 0)
    close(fd);
  if (!ok) {
    perr_set(err, "IO", "cannot write a new key to %s: %s", path,
             key ? strerror(errno) : "key generation failed");
    EVP_PKEY_free(key);
    ERR_clear_error();
    return NULL;
  }
  return key;
}

static EVP_PKEY *load_or_create_key(const char *path, struct provd_err *err)
{
  if (access(path, F_OK) != 0 && errno == ENOENT)
    return generate_key_file(path, err);
  EVP_PKEY *key = pemkey_read_unencrypted(path);
  if (!key)
    perr_set(err, "BAD_INPUT", "%s: no unencrypted PEM private key",
             path);
  return key;
}

static char *sign_request(EVP_PKEY *key, const char *registration_id)
{
  X509_REQ *req = X509_REQ_new();
  unsigned char *der = NULL;
  int len = -1;
  if (req &&
      X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
                                 MBSTRING_UTF8,
                                 (const unsigned char *)registration_id, -1,
                                 -1, 0) &&
      X509_REQ_set_pubkey(req, key) &&
      X509_REQ_sign(req, key, EVP_sha384()) > 0)
    len = i2d_X509_REQ(req, &der);
  char *b64 = len > 0 ? b64_encode(der, (size_t)len) : NULL;
  OPENSSL_free(der);
  X509_REQ_free(req);
  return b64;
}

int provd_device_csr_from_key_file(const char *key_file,
                                   const char *registration_id,
                                   char **b64_take, struct provd_err *err)
{
  *b64_take = NULL;
  EVP_PKEY *key = load_or_create_key(key_file, err);
  if (!key)
    return -1;
  *b64_take = sign_request(key, registration_id);
  EVP_PKEY_free(key);
  if (!*b64_take) {
    ERR_clear_error();
    perr_set(err, "BAD_INPUT", "cannot make a CSR with the key in %s",
             key_file);
    return -1;
  }
  return 0;
}

static X509 *decode_cert(const json_t *item)
{
  static const size_t cap = MAX_CERT_DER;
  const char *b64 = json_string_value(item);
  unsigned char *der = malloc(cap);
  size_t n = 0;
  X509 *cert = NULL;
  if (der && b64 && b64_decode(b64, der, cap, &n) == 0) {
    const unsigned char *p = der;
    cert = d2i_X509(NULL, &p, (long)n);
  }
  free(der);
  return cert;
}

/* PEM of every item, in order, into one memory BIO; NULL on a bad item. */
static BIO *chain_pem(const json_t *chain, struct provd_err *err)
{
  BIO *mem = BIO_new(BIO_s_mem());
  size_t i;
  const json_t *item;
  json_array_foreach(chain, i, item) {
    X509 *cert = decode_cert(item);
    int ok = cert && mem && PEM_write_bio_X509(mem, cert);
    X509_free(cert);
    if (!ok) {
      ERR_clear_error();
      BIO_free(mem);
      perr_set(err, "BAD_RESPONSE", "issuedCertificateChain[%zu] is not a "
               "base64 DER certificate", i);
      return NULL;
    }
  }
  return mem;
}

int provd_device_issued_chain_pem(const char *state_json, char **pem_take,
                                  struct provd_err *err)
{
  *pem_take = NULL;
  json_t *state = state_json ? json_loads(state_json, 0, NULL) : NULL;
  const json_t *chain = json_object_get(state, "issuedCertificateChain");
  size_t n = json_array_size(chain);
  if (n == 0 || n > MAX_CHAIN) {
    json_decref(state);
    perr_set(err, "NO_CERTIFICATE", "the service issued no certificate "
             "(no issuedCertificateChain in the answer)");
    return -1;
  }
  BIO *mem = chain_pem(chain, err);
  json_decref(state);
  if (!mem)
    return -1;
  char *pem = NULL;
  long len = BIO_get_mem_data(mem, &pem);
  *pem_take = len > 0 ? strndup(pem, (size_t)len) : NULL;
  BIO_free(mem);
  if (!*pem_take) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  return (int)n;
}
