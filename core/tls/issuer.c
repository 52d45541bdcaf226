#include "tls/issuer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "provd/plugin.h"
#include "tls/certgen.h"
#include "util/b64.h"
#include "util/log.h"
#include "util/pemkey.h"

#define COMPONENT "issuer"

struct issuer {
  char *name;
  EVP_PKEY *key;            /* the issuing CA's private key */
  STACK_OF(X509) *chain;    /* issuing CA first, root last */
  json_t *chain_b64;        /* the same, base64 DER, for answers */
  int validity_days;
  enum csr_key_rule rule;
};

struct issuer_set {
  struct issuer *items;
  size_t n;
};

/* ---- loading ---------------------------------------------------------- */

static int load_err(struct provd_err *err, const struct cfg_issuer *c,
                    const char *fmt, const char *arg)
{
  char msg[400];
  snprintf(msg, sizeof msg, fmt, arg);
  ERR_clear_error();
  if (c->pos.file) /* FILE:LINE:COL, as every config error */
    perr_set(err, "ISSUER_CONFIG", "%s:%d:%d: certificate_issuers '%s': %s",
             c->pos.file, c->pos.line, c->pos.col, c->name, msg);
  else
    perr_set(err, "ISSUER_CONFIG", "certificate_issuers '%s': %s", c->name,
             msg);
  return PROVD_E_INVAL;
}

/* A regular file of bounded size; for keys also: nobody but the owner
 * may read it (as ssh insists for its keys). */
static int check_file(const struct cfg_issuer *c, const char *path,
                      int secret, struct provd_err *err)
{
  struct stat st;
  if (stat(path, &st) != 0)
    return load_err(err, c, "cannot read %s", path);
  if (!S_ISREG(st.st_mode) || st.st_size > ISSUER_MAX_FILE_BYTES)
    return load_err(err, c, "%s is not a regular file of at most 64 KiB",
                    path);
  if (secret && (st.st_mode & 077))
    return load_err(err, c, "%s is readable by group or others; chmod 600 "
                            "it", path);
  return PROVD_OK;
}

static EVP_PKEY *load_key(const struct cfg_issuer *c, struct provd_err *err)
{
  if (check_file(c, c->key_file, 1, err) != PROVD_OK)
    return NULL;
  EVP_PKEY *key = pemkey_read_unencrypted(c->key_file);
  if (!key) {
    load_err(err, c, "%s holds no unencrypted PEM private key", c->key_file);
    return NULL;
  }
  int type = EVP_PKEY_get_base_id(key);
  if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
    EVP_PKEY_free(key);
    load_err(err, c, "%s: the CA key must be EC or RSA", c->key_file);
    return NULL;
  }
  return key;
}

static STACK_OF(X509) *read_certs(const struct cfg_issuer *c,
                                  struct provd_err *err)
{
  if (check_file(c, c->cert, 0, err) != PROVD_OK)
    return NULL;
  BIO *in = BIO_new_file(c->cert, "r");
  STACK_OF(X509) *chain = sk_X509_new_null();
  X509 *x;
  while (in && chain && sk_X509_num(chain) <= ISSUER_MAX_CHAIN &&
         (x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL)
    if (!sk_X509_push(chain, x))
      X509_free(x);
  BIO_free(in);
  ERR_clear_error(); /* the read that ends the loop fails by design */
  int n = chain ? sk_X509_num(chain) : 0;
  if (n < 1 || n > ISSUER_MAX_CHAIN) {
    sk_X509_pop_free(chain, X509_free);
    load_err(err, c, "%s must hold 1 to 8 PEM certificates", c->cert);
    return NULL;
  }
  return chain;
}

/* The chain must be what devices will be told: the key's CA, each one
 * issued by the next, ending at a self-signed root; OpenSSL verifies. */
static int check_chain(const struct cfg_issuer *c, STACK_OF(X509) *chain,
                       EVP_PKEY *key, struct provd_err *err)
{
  X509 *ca = sk_X509_value(chain, 0);
  X509 *root = sk_X509_value(chain, sk_X509_num(chain) - 1);
  if (!X509_check_private_key(ca, key))
    return load_err(err, c, "%s does not belong to the first certificate",
                    c->key_file);
  if (X509_check_ca(ca) != 1)
    return load_err(err, c, "the first certificate of %s is not a CA "
                            "(basicConstraints CA:TRUE)", c->cert);
  if (X509_check_issued(root, root) != X509_V_OK)
    return load_err(err, c, "%s must end with a self-signed root", c->cert);
  X509_STORE *trust = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *middle = sk_X509_dup(chain);
  int ok = trust && ctx && middle && X509_STORE_add_cert(trust, root) &&
           X509_STORE_CTX_init(ctx, trust, ca, middle) &&
           X509_verify_cert(ctx) == 1;
  int why = ctx ? X509_STORE_CTX_get_error(ctx) : 0;
  sk_X509_free(middle);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(trust);
  if (!ok)
    return load_err(err, c, "chain does not verify: %s",
                    X509_verify_cert_error_string(why));
  return PROVD_OK;
}

static char *cert_b64(X509 *cert)
{
  unsigned char *der = NULL;
  int len = i2d_X509(cert, &der);
  char *b64 = len > 0 ? b64_encode(der, (size_t)len) : NULL;
  OPENSSL_free(der);
  return b64;
}

static json_t *chain_to_b64(STACK_OF(X509) *chain)
{
  json_t *arr = json_array();
  for (int i = 0; arr && i < sk_X509_num(chain); i++) {
    char *b64 = cert_b64(sk_X509_value(chain, i));
    if (!b64 || json_array_append_new(arr, json_string(b64)) != 0) {
      free(b64);
      json_decref(arr);
      return NULL;
    }
    free(b64);
  }
  return arr;
}

static int load_one(const struct cfg_issuer *c, struct issuer *is,
                    struct provd_err *err)
{
  is->validity_days = c->validity_days;
  is->rule = (enum csr_key_rule)c->csr_key_rule;
  is->name = strdup(c->name);
  is->key = load_key(c, err);
  if (!is->key)
    return PROVD_E_INVAL;
  is->chain = read_certs(c, err);
  if (!is->chain || check_chain(c, is->chain, is->key, err) != PROVD_OK)
    return PROVD_E_INVAL;
  is->chain_b64 = chain_to_b64(is->chain);
  if (!is->name || !is->chain_b64) {
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  log_info(COMPONENT, "certificate issuer %s ready: %d-certificate chain "
                      "from %s, validity %d days",
           is->name, sk_X509_num(is->chain), c->cert, is->validity_days);
  return PROVD_OK;
}

int issuers_load(const struct provd_config *cfg, struct issuer_set **out_take,
                 struct provd_err *err)
{
  *out_take = NULL;
  struct issuer_set *set = calloc(1, sizeof(*set));
  if (set && cfg->n_issuers)
    set->items = calloc(cfg->n_issuers, sizeof(*set->items));
  if (!set || (cfg->n_issuers && !set->items)) {
    free(set);
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  for (size_t i = 0; i < cfg->n_issuers; i++) {
    set->n = i + 1;
    int rc = load_one(&cfg->issuers[i], &set->items[i], err);
    if (rc != PROVD_OK) {
      issuers_free(set);
      return rc;
    }
  }
  *out_take = set;
  return PROVD_OK;
}

void issuers_free(struct issuer_set *set)
{
  if (!set)
    return;
  for (size_t i = 0; i < set->n; i++) {
    struct issuer *is = &set->items[i];
    free(is->name);
    EVP_PKEY_free(is->key);
    sk_X509_pop_free(is->chain, X509_free);
    json_decref(is->chain_b64);
  }
  free(set->items);
  free(set);
}

const struct issuer *issuers_find(const struct issuer_set *set,
                                  const char *name)
{
  for (size_t i = 0; set && name && i < set->n; i++)
    if (strcmp(set->items[i].name, name) == 0)
      return &set->items[i];
  return NULL;
}

enum csr_key_rule issuer_key_rule(const struct issuer *iss)
{
  return iss->rule;
}

/* ---- signing ---------------------------------------------------------- */

static X509 *make_device_cert(const struct issuer *iss, EVP_PKEY *device_key,
                              const char *registration_id)
{
  static const struct certgen_ext profile[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "clientAuth"},
      {0, NULL}};
  const struct certgen_signer by_ca = {sk_X509_value(iss->chain, 0),
                                       iss->key, EVP_sha384()};
  return certgen_sign(device_key, registration_id, iss->validity_days,
                      profile, &by_ca);
}

int issuer_sign(const struct issuer *iss, X509_REQ *req,
                const char *registration_id, json_t **chain_take,
                struct provd_err *err)
{
  *chain_take = NULL;
  EVP_PKEY *device_key = X509_REQ_get0_pubkey(req);
  X509 *cert = device_key ? make_device_cert(iss, device_key,
                                             registration_id)
                          : NULL;
  char *leaf = cert ? cert_b64(cert) : NULL;
  json_t *chain = leaf ? json_array() : NULL;
  int ok = chain && json_array_append_new(chain, json_string(leaf)) == 0;
  /* Copies, not references: the issuer's array is shared by every store
   * thread and must never see a reference count change. */
  for (size_t i = 0; ok && i < json_array_size(iss->chain_b64); i++) {
    const char *ca = json_string_value(json_array_get(iss->chain_b64, i));
    ok = json_array_append_new(chain, json_string(ca)) == 0;
  }
  free(leaf);
  X509_free(cert);
  if (!ok) {
    json_decref(chain);
    certgen_crypto_err(err, "CSR_ISSUANCE_FAILED",
                       "cannot sign the device certificate");
    return PROVD_E_INTERNAL;
  }
  *chain_take = chain;
  return PROVD_OK;
}
