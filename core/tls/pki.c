/* Data-dir PKI: a local CA, a server certificate it signs, the service
 * connection string.  Files are written
 * atomically (temp + fsync + rename) and never regenerated once they
 * exist: an operator who distributed ca.pem must be able to rely on it. */
#include "tls/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/certgen.h"
#include "util/file_write.h"
#include "util/log.h"

#define COMPONENT "pki"
#define CA_DAYS 3650
#define SERVER_DAYS 825
#define SAS_KEY_BYTES 32
#define MAX_CONN_STRING_FILE 4096

static const char CONN_STRING_PREFIX[] =
    "HostName=localhost;SharedAccessKeyName=provisioningserviceowner;"
    "SharedAccessKey=";

/* ---- files ------------------------------------------------------------ */

static int join_path(char *out, size_t n, const char *dir, const char *name,
                     struct provd_err *err)
{
  int r = snprintf(out, n, "%s/%s", dir, name);
  if (r < 0 || (size_t)r >= n) {
    perr_set(err, "PKI_IO", "path too long: %s/%s", dir, name);
    return -1;
  }
  return 0;
}

static bool file_exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

/* mkdir -p; directories we create get `mode`. */
static int mkdir_p(const char *path, mode_t mode, struct provd_err *err)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    perr_set(err, "PKI_IO", "path too long: %s", path);
    return -1;
  }
  size_t len = strlen(buf);
  while (len > 1 && buf[len - 1] == '/')
    buf[--len] = '\0';
  for (char *p = buf + 1;; p++) {
    bool last = *p == '\0';
    if (*p == '/' || last) {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, mode) < 0 && errno != EEXIST) {
        perr_set(err, "PKI_IO", "cannot create directory %s: %s", buf,
                 strerror(errno));
        return -1;
      }
      *p = saved;
    }
    if (last)
      break;
  }
  struct stat st;
  if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode)) {
    perr_set(err, "PKI_IO", "%s is not a directory", buf);
    return -1;
  }
  return 0;
}

/* Writes the PEM held in a memory BIO. */
static int write_pem(const char *path, mode_t mode, BIO *mem,
                     struct provd_err *err)
{
  char *data = NULL;
  long len = BIO_get_mem_data(mem, &data);
  if (len <= 0) {
    perr_set(err, "PKI_CRYPTO", "empty PEM for %s", path);
    return -1;
  }
  return file_write_atomic(path, data, (size_t)len, mode, 1, err);
}

static int write_key(const char *path, EVP_PKEY *key, struct provd_err *err)
{
  BIO *mem = BIO_new(BIO_s_mem());
  if (!mem || !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) {
    BIO_free(mem);
    certgen_crypto_err(err, "PKI_CRYPTO", "cannot encode private key");
    return -1;
  }
  int r = write_pem(path, 0600, mem, err);
  BIO_free(mem);
  return r;
}

static int write_cert(const char *path, X509 *cert, struct provd_err *err)
{
  BIO *mem = BIO_new(BIO_s_mem());
  if (!mem || !PEM_write_bio_X509(mem, cert)) {
    BIO_free(mem);
    certgen_crypto_err(err, "PKI_CRYPTO", "cannot encode certificate");
    return -1;
  }
  int r = write_pem(path, 0644, mem, err);
  BIO_free(mem);
  return r;
}

static EVP_PKEY *load_key(const char *path, struct provd_err *err)
{
  BIO *in = BIO_new_file(path, "r");
  EVP_PKEY *key = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
  BIO_free(in);
  if (!key)
    certgen_crypto_err(err, "PKI_CRYPTO", path);
  return key;
}

static X509 *load_cert(const char *path, struct provd_err *err)
{
  BIO *in = BIO_new_file(path, "r");
  X509 *cert = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
  BIO_free(in);
  if (!cert)
    certgen_crypto_err(err, "PKI_CRYPTO", path);
  return cert;
}

/* ---- certificates ----------------------------------------------------- */

static EVP_PKEY *generate_p256(struct provd_err *err)
{
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!key)
    certgen_crypto_err(err, "PKI_CRYPTO", "cannot generate a P-256 key");
  return key;
}

static X509 *make_ca_cert(EVP_PKEY *key, struct provd_err *err)
{
  static const struct certgen_ext profile[] = {
      {NID_basic_constraints, "critical,CA:TRUE"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {0, NULL}};
  const struct certgen_signer self = {NULL, key, EVP_sha256()};
  X509 *cert = certgen_sign(key, "provd local CA", CA_DAYS, profile, &self);
  if (!cert)
    certgen_crypto_err(err, "PKI_CRYPTO",
                       "cannot create the local CA certificate");
  return cert;
}

static X509 *make_server_cert(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key,
                              struct provd_err *err)
{
  static const struct certgen_ext profile[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
      {0, NULL}};
  const struct certgen_signer by_ca = {ca, ca_key, EVP_sha256()};
  X509 *cert = certgen_sign(key, "localhost", SERVER_DAYS, profile, &by_ca);
  if (!cert)
    certgen_crypto_err(err, "PKI_CRYPTO",
                       "cannot create the server certificate");
  return cert;
}

/* ---- the local PKI ---------------------------------------------------- */

struct local_pki {
  char ca_pem[PATH_MAX], ca_key[PATH_MAX];
  char srv_pem[PATH_MAX], srv_key[PATH_MAX];
};

static int generate_ca(const struct local_pki *p, X509 **ca,
                       EVP_PKEY **ca_key, struct provd_err *err)
{
  *ca_key = generate_p256(err);
  if (!*ca_key)
    return -1;
  *ca = make_ca_cert(*ca_key, err);
  if (!*ca)
    return -1;
  /* Key first: a ca.pem without its key could never sign again. */
  if (write_key(p->ca_key, *ca_key, err) < 0 ||
      write_cert(p->ca_pem, *ca, err) < 0)
    return -1;
  log_info(COMPONENT, "generated local CA %s", p->ca_pem);
  return 0;
}

static int load_ca(const struct local_pki *p, X509 **ca, EVP_PKEY **ca_key,
                   struct provd_err *err)
{
  *ca = load_cert(p->ca_pem, err);
  if (!*ca)
    return -1;
  *ca_key = load_key(p->ca_key, err);
  if (!*ca_key)
    return -1;
  if (!X509_check_private_key(*ca, *ca_key)) {
    ERR_clear_error();
    perr_set(err, "PKI_STATE", "%s does not belong to %s", p->ca_key,
             p->ca_pem);
    return -1;
  }
  return 0;
}

static int issue_server_cert(const struct local_pki *p, X509 *ca,
                             EVP_PKEY *ca_key, struct provd_err *err)
{
  EVP_PKEY *key = generate_p256(err);
  X509 *cert = key ? make_server_cert(key, ca, ca_key, err) : NULL;
  int r = -1;
  if (cert && write_key(p->srv_key, key, err) == 0 &&
      write_cert(p->srv_pem, cert, err) == 0) {
    log_info(COMPONENT, "generated server certificate %s", p->srv_pem);
    r = 0;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return r;
}

/* Decides what exists, what may be generated, and what is inconsistent
 * (never silently replaced). */
static int ensure_local_pki(const struct local_pki *p, struct provd_err *err)
{
  bool ca_pem = file_exists(p->ca_pem), ca_key = file_exists(p->ca_key);
  bool srv_pem = file_exists(p->srv_pem), srv_key = file_exists(p->srv_key);
  if (srv_pem != srv_key) {
    perr_set(err, "PKI_STATE", "%s without %s; restore it or remove both "
             "to regenerate", srv_pem ? p->srv_pem : p->srv_key,
             srv_pem ? p->srv_key : p->srv_pem);
    return -1;
  }
  if (!ca_pem && (ca_key || srv_pem)) {
    perr_set(err, "PKI_STATE", "%s is missing; restore it or remove the "
             "tls directory to regenerate the local PKI", p->ca_pem);
    return -1;
  }
  if (srv_pem)
    return 0; /* all in place (the CA key may have been put offline) */
  if (ca_pem && !ca_key) {
    perr_set(err, "PKI_STATE", "%s is missing, so no server certificate "
             "can be issued", p->ca_key);
    return -1;
  }
  X509 *ca = NULL;
  EVP_PKEY *key = NULL;
  int r = ca_pem ? load_ca(p, &ca, &key, err) : generate_ca(p, &ca, &key, err);
  if (r == 0)
    r = issue_server_cert(p, ca, key, err);
  X509_free(ca);
  EVP_PKEY_free(key);
  return r;
}

/* ---- connection string ------------------------------------------------ */

static int generate_connection_string(const char *path, struct provd_err *err)
{
  unsigned char raw[SAS_KEY_BYTES];
  char b64[4 * ((SAS_KEY_BYTES + 2) / 3) + 1];
  char line[sizeof CONN_STRING_PREFIX + sizeof b64 + 1];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    certgen_crypto_err(err, "PKI_CRYPTO",
                       "no random bytes for the service key");
    return -1;
  }
  EVP_EncodeBlock((unsigned char *)b64, raw, sizeof raw);
  int n = snprintf(line, sizeof line, "%s%s\n", CONN_STRING_PREFIX, b64);
  int r = file_write_atomic(path, line, (size_t)n, 0600, 1, err);
  OPENSSL_cleanse(raw, sizeof raw);
  OPENSSL_cleanse(b64, sizeof b64);
  OPENSSL_cleanse(line, sizeof line);
  if (r == 0)
    log_info(COMPONENT, "generated service connection string %s", path);
  return r;
}

static int ensure_connection_string(const char *path, struct provd_err *err)
{
  if (!file_exists(path))
    return generate_connection_string(path, err);
  struct connstr cs;
  int r = pki_read_connection_string(path, &cs, err);
  OPENSSL_cleanse(&cs, sizeof cs);
  struct stat st;
  if (r == 0 && stat(path, &st) == 0 && (st.st_mode & 077))
    log_warn(COMPONENT, "%s is readable by other users (mode %03o)", path,
             (unsigned)(st.st_mode & 0777));
  return r;
}

/* ---- public ----------------------------------------------------------- */

static int check_readable(const char *what, const char *path,
                          struct provd_err *err)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    perr_set(err, "PKI_IO", "cannot read %s %s: %s", what, path,
             strerror(errno));
    return -1;
  }
  fclose(f);
  return 0;
}

static int use_given_cert(const char *cert, const char *key,
                          struct pki_paths *out, struct provd_err *err)
{
  if (!cert || !*cert || !key || !*key) {
    perr_set(err, "PKI_CONFIG", "tls cert and key must be given together");
    return -1;
  }
  if (check_readable("certificate", cert, err) < 0 ||
      check_readable("private key", key, err) < 0)
    return -1;
  if (snprintf(out->cert, sizeof out->cert, "%s", cert) >=
          (int)sizeof out->cert ||
      snprintf(out->key, sizeof out->key, "%s", key) >= (int)sizeof out->key) {
    perr_set(err, "PKI_CONFIG", "certificate or key path too long");
    return -1;
  }
  return 0;
}

int pki_init_data_dir(const char *data_dir, const char *cert,
                      const char *key, struct pki_paths *out,
                      struct provd_err *err)
{
  memset(out, 0, sizeof *out);
  if (!data_dir || !*data_dir) {
    perr_set(err, "PKI_CONFIG", "no data directory");
    return -1;
  }
  char tls_dir[PATH_MAX];
  struct local_pki p;
  if (mkdir_p(data_dir, 0700, err) < 0 ||
      join_path(tls_dir, sizeof tls_dir, data_dir, "tls", err) < 0 ||
      join_path(out->conn_string, sizeof out->conn_string, data_dir,
                "service-connection-string", err) < 0 ||
      join_path(p.ca_pem, sizeof p.ca_pem, tls_dir, "ca.pem", err) < 0 ||
      join_path(p.ca_key, sizeof p.ca_key, tls_dir, "ca.key", err) < 0 ||
      join_path(p.srv_pem, sizeof p.srv_pem, tls_dir, "server.pem", err) < 0 ||
      join_path(p.srv_key, sizeof p.srv_key, tls_dir, "server.key", err) < 0)
    return -1;
  bool given = (cert && *cert) || (key && *key);
  if (given) {
    /* The operator's certificate: its CA is theirs; ca.pem is reported
     * only if an earlier start left one. */
    if (use_given_cert(cert, key, out, err) < 0)
      return -1;
    if (file_exists(p.ca_pem))
      snprintf(out->ca, sizeof out->ca, "%s", p.ca_pem);
  } else {
    if (mkdir_p(tls_dir, 0700, err) < 0 || ensure_local_pki(&p, err) < 0)
      return -1;
    snprintf(out->ca, sizeof out->ca, "%s", p.ca_pem);
    snprintf(out->cert, sizeof out->cert, "%s", p.srv_pem);
    snprintf(out->key, sizeof out->key, "%s", p.srv_key);
  }
  return ensure_connection_string(out->conn_string, err);
}

int pki_read_connection_string(const char *path, struct connstr *out,
                               struct provd_err *err)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    perr_set(err, "PKI_IO", "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  char buf[MAX_CONN_STRING_FILE + 1];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (n > MAX_CONN_STRING_FILE) {
    OPENSSL_cleanse(buf, sizeof buf);
    perr_set(err, "CONN_STRING", "%s is larger than %d bytes", path,
             MAX_CONN_STRING_FILE);
    return -1;
  }
  buf[n] = '\0';
  while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
    buf[--n] = '\0';
  int r = -1;
  if (memchr(buf, '\n', n) || memchr(buf, '\0', n))
    perr_set(err, "CONN_STRING", "%s must hold one line", path);
  else
    r = connstr_parse(buf, out, err);
  OPENSSL_cleanse(buf, sizeof buf);
  if (r < 0 && err && strcmp(err->code, "BAD_CONNECTION_STRING") == 0) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    perr_set(err, "CONN_STRING", "%s: %s", path, msg);
  }
  return r;
}
