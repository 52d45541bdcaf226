/* Data-dir PKI: generation, file modes, certificate contents checked with
 * OpenSSL's own verifier, reuse on later starts, operator-given files. */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/certgen.h"
#include "tls/pki.h"
#include "tls/server_ctx.h"

static char g_tmp[256];
static char g_data[512];

static void setup(void)
{
  snprintf(g_tmp, sizeof g_tmp, "/tmp/provd-test-pki-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_tmp));
  /* Two missing parents: mkdir -p semantics. */
  snprintf(g_data, sizeof g_data, "%s/a/b/data", g_tmp);
}

static void teardown(void)
{
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_tmp);
}

static void path_in(char *out, size_t n, const char *rel)
{
  snprintf(out, n, "%s/%s", g_data, rel);
}

static unsigned mode_of(const char *path)
{
  struct stat st;
  ck_assert_msg(stat(path, &st) == 0, "missing %s", path);
  return (unsigned)(st.st_mode & 0777);
}

/* Whole file, NUL-terminated; caller frees. */
static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  char *buf = malloc(65536);
  size_t n = fread(buf, 1, 65535, f);
  fclose(f);
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

static X509 *read_cert(const char *path)
{
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  ck_assert_ptr_nonnull(x);
  return x;
}

static void init_ok(struct pki_paths *p)
{
  struct provd_err err = {0};
  int r = pki_init_data_dir(g_data, NULL, NULL, p, &err);
  ck_assert_msg(r == 0, "%s: %s", err.code, err.msg);
}

/* Verifies cert against ca.pem as a TLS server cert for host / ip. */
static int verify_server(X509 *cert, X509 *ca, const char *host,
                         const char *ip)
{
  X509_STORE *store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, NULL);
  X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  if (host)
    X509_VERIFY_PARAM_set1_host(param, host, 0);
  if (ip)
    X509_VERIFY_PARAM_set1_ip_asc(param, ip);
  int ok = X509_verify_cert(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok;
}

static int is_p256(X509 *x)
{
  EVP_PKEY *k = X509_get0_pubkey(x);
  char group[64] = "";
  size_t len = 0;
  return k && EVP_PKEY_is_a(k, "EC") &&
         EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group,
                                        &len) &&
         strcmp(group, "prime256v1") == 0;
}

START_TEST(t_fresh_dir_files_and_modes)
{
  struct pki_paths p;
  init_ok(&p);
  char path[600];
  ck_assert_uint_eq(mode_of(g_data), 0700);
  path_in(path, sizeof path, "tls");
  ck_assert_uint_eq(mode_of(path), 0700);
  path_in(path, sizeof path, "tls/ca.key");
  ck_assert_uint_eq(mode_of(path), 0600);
  path_in(path, sizeof path, "tls/server.key");
  ck_assert_uint_eq(mode_of(path), 0600);
  ck_assert_uint_eq(mode_of(p.key), 0600);
  ck_assert_uint_eq(mode_of(p.conn_string), 0600);
  ck_assert_uint_eq(mode_of(p.ca) & 0200, 0200);
  path_in(path, sizeof path, "tls/ca.pem");
  ck_assert_str_eq(p.ca, path);
  path_in(path, sizeof path, "tls/server.pem");
  ck_assert_str_eq(p.cert, path);
  path_in(path, sizeof path, "service-connection-string");
  ck_assert_str_eq(p.conn_string, path);
  /* No temp files left behind by the atomic writes. */
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "ls -A '%s' '%s/tls' | grep -q '[.]tmp[.]'",
           g_data, g_data);
  ck_assert_int_ne(system(cmd), 0);
}
END_TEST

START_TEST(t_certificates)
{
  struct pki_paths p;
  init_ok(&p);
  X509 *ca = read_cert(p.ca);
  X509 *srv = read_cert(p.cert);
  ck_assert_int_eq(verify_server(srv, ca, "localhost", NULL), 1);
  ck_assert_int_eq(verify_server(srv, ca, NULL, "127.0.0.1"), 1);
  ck_assert_int_eq(verify_server(srv, ca, NULL, "::1"), 1);
  ck_assert_int_ne(verify_server(srv, ca, "example.com", NULL), 1);
  ck_assert_int_ne(verify_server(srv, ca, NULL, "10.0.0.1"), 1);

  /* CA: CA:TRUE (critical), keyCertSign + cRLSign, SKI, P-256. */
  ck_assert_int_eq(X509_check_ca(ca), 1);
  int crit = -1;
  BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit,
                                           NULL);
  ck_assert_ptr_nonnull(bc);
  ck_assert(bc->ca);
  ck_assert_int_eq(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  ck_assert_uint_eq(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
  ck_assert_ptr_nonnull(X509_get0_subject_key_id(ca));
  ck_assert(is_p256(ca));
  char cn[64];
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn,
                            sizeof cn);
  ck_assert_str_eq(cn, "provd local CA");

  /* Server: serverAuth, not a CA, AKI = CA's SKI, 16-byte serial, P-256,
   * about 825 days. */
  ck_assert_int_eq(X509_check_ca(srv), 0);
  ck_assert(X509_get_extended_key_usage(srv) & XKU_SSL_SERVER);
  ck_assert_int_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(srv),
                                         X509_get0_subject_key_id(ca)), 0);
  ck_assert_int_eq(ASN1_STRING_length(X509_get0_serialNumber(srv)), 16);
  ck_assert(is_p256(srv));
  X509_NAME_get_text_by_NID(X509_get_subject_name(srv), NID_commonName, cn,
                            sizeof cn);
  ck_assert_str_eq(cn, "localhost");
  int days = 0, secs = 0;
  ck_assert(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(srv),
                           X509_get0_notAfter(srv)));
  ck_assert_int_ge(days, 825);
  ck_assert_int_le(days, 826);
  X509_free(ca);
  X509_free(srv);
}
END_TEST

START_TEST(t_connection_string)
{
  struct pki_paths p;
  init_ok(&p);
  size_t len;
  char *text = slurp(p.conn_string, &len);
  static const char prefix[] = "HostName=localhost;SharedAccessKeyName="
                               "provisioningserviceowner;SharedAccessKey=";
  ck_assert_int_eq(strncmp(text, prefix, sizeof prefix - 1), 0);
  ck_assert_int_eq(text[len - 1], '\n');
  ck_assert_ptr_eq(strchr(text, '\n'), text + len - 1);

  struct connstr cs;
  struct provd_err err = {0};
  ck_assert_int_eq(pki_read_connection_string(p.conn_string, &cs, &err), 0);
  ck_assert_str_eq(cs.host, "localhost");
  ck_assert_str_eq(cs.key_name, "provisioningserviceowner");
  const char *key = cs.key;
  text[len - 1] = '\0';
  ck_assert_str_eq(key, text + sizeof prefix - 1);
  unsigned char raw[64];
  ck_assert_uint_eq(strlen(key), 44);
  int n = EVP_DecodeBlock(raw, (const unsigned char *)key, (int)strlen(key));
  ck_assert_int_eq(n - (key[43] == '=') - (key[42] == '='), 32);
  free(text);
}
END_TEST

START_TEST(t_read_connection_string_errors)
{
  struct pki_paths p;
  init_ok(&p);
  struct connstr cs;
  struct provd_err err = {0};
  char path[600];
  path_in(path, sizeof path, "long-key");
  FILE *f = fopen(path, "w");
  fputs("HostName=h;SharedAccessKeyName=n;SharedAccessKey=", f);
  for (int i = 0; i < 600; i++)
    fputc('A', f);
  fputc('\n', f);
  fclose(f);
  ck_assert_int_eq(pki_read_connection_string(path, &cs, &err), -1);
  ck_assert_str_eq(err.code, "CONN_STRING");
  ck_assert_ptr_nonnull(strstr(err.msg, "long-key"));
  path_in(path, sizeof path, "partial");
  f = fopen(path, "w");
  fputs("HostName=h;SharedAccessKeyName=n\n", f);
  fclose(f);
  ck_assert_int_eq(pki_read_connection_string(path, &cs, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "SharedAccessKey"));
  path_in(path, sizeof path, "absent");
  ck_assert_int_eq(pki_read_connection_string(path, &cs, &err), -1);
}
END_TEST

static const char *FILES[] = {"tls/ca.pem", "tls/ca.key", "tls/server.pem",
                              "tls/server.key", "service-connection-string"};

START_TEST(t_second_start_reuses)
{
  struct pki_paths p;
  init_ok(&p);
  char *before[5];
  char path[600];
  for (int i = 0; i < 5; i++) {
    path_in(path, sizeof path, FILES[i]);
    before[i] = slurp(path, NULL);
  }
  init_ok(&p);
  for (int i = 0; i < 5; i++) {
    path_in(path, sizeof path, FILES[i]);
    char *after = slurp(path, NULL);
    ck_assert_msg(strcmp(before[i], after) == 0, "%s changed", FILES[i]);
    free(after);
    free(before[i]);
  }
}
END_TEST

/* Server cert gone, CA kept: a new server cert from the same CA. */
START_TEST(t_reissue_with_existing_ca)
{
  struct pki_paths p;
  init_ok(&p);
  char *ca_before = slurp(p.ca, NULL);
  char *srv_before = slurp(p.cert, NULL);
  ck_assert_int_eq(unlink(p.cert), 0);
  ck_assert_int_eq(unlink(p.key), 0);
  init_ok(&p);
  char *ca_after = slurp(p.ca, NULL);
  char *srv_after = slurp(p.cert, NULL);
  ck_assert_str_eq(ca_before, ca_after);
  ck_assert_str_ne(srv_before, srv_after);
  X509 *ca = read_cert(p.ca), *srv = read_cert(p.cert);
  ck_assert_int_eq(verify_server(srv, ca, "localhost", NULL), 1);
  X509_free(ca);
  X509_free(srv);
  free(ca_before);
  free(ca_after);
  free(srv_before);
  free(srv_after);
}
END_TEST

START_TEST(t_inconsistent_state_refused)
{
  struct pki_paths p;
  init_ok(&p);
  char *srv_before = slurp(p.cert, NULL);
  ck_assert_int_eq(unlink(p.key), 0);
  struct provd_err err = {0};
  ck_assert_int_eq(pki_init_data_dir(g_data, NULL, NULL, &p, &err), -1);
  ck_assert_str_eq(err.code, "PKI_STATE");
  char path[600];
  path_in(path, sizeof path, "tls/server.pem");
  char *srv_after = slurp(path, NULL);
  ck_assert_str_eq(srv_before, srv_after); /* never overwritten */
  free(srv_before);
  free(srv_after);
}
END_TEST

START_TEST(t_given_cert_used_as_is)
{
  /* Use a first data dir's server cert as "the operator's". */
  struct pki_paths first;
  init_ok(&first);
  char other[600];
  snprintf(other, sizeof other, "%s/other", g_tmp);
  struct pki_paths p;
  struct provd_err err = {0};
  ck_assert_msg(pki_init_data_dir(other, first.cert, first.key, &p, &err) == 0,
                "%s", err.msg);
  ck_assert_str_eq(p.cert, first.cert);
  ck_assert_str_eq(p.key, first.key);
  char path[700];
  snprintf(path, sizeof path, "%s/tls/server.pem", other);
  ck_assert_int_ne(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/service-connection-string", other);
  ck_assert_uint_eq(mode_of(path), 0600);
  /* Unreadable or half-given: errors. */
  snprintf(path, sizeof path, "%s/nope.pem", g_tmp);
  ck_assert_int_eq(pki_init_data_dir(other, path, first.key, &p, &err), -1);
  ck_assert_int_eq(pki_init_data_dir(other, first.cert, NULL, &p, &err), -1);
}
END_TEST

START_TEST(t_tls_ctx)
{
  struct pki_paths p;
  init_ok(&p);
  struct provd_err err = {0};
  SSL_CTX *ctx = tls_server_ctx_new(p.cert, p.key, NULL, &err);
  ck_assert_msg(ctx != NULL, "%s", err.msg);
  ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
  ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
  ck_assert(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
  ck_assert(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
  SSL_CTX_free(ctx);
  /* A key that does not belong to the certificate. */
  char path[600];
  path_in(path, sizeof path, "tls/ca.key");
  ctx = tls_server_ctx_new(p.cert, path, NULL, &err);
  ck_assert_ptr_null(ctx);
  ck_assert_str_eq(err.code, "TLS_CONFIG");
}
END_TEST

/* A full in-memory handshake against server, the client presenting
 * cert and key; returns the peer certificate the server decoded (caller
 * frees), or NULL. */
/* The client offers only TLS 1.2 with tls12_ciphers when that is set,
 * and only the key exchange groups `groups` when that is set. */
static X509 *handshake_offering(SSL_CTX *server, X509 *cert, EVP_PKEY *key,
                                const char *tls12_ciphers, const char *groups)
{
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  if (tls12_ciphers) {
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
    ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, tls12_ciphers), 1);
  }
  if (groups)
    ck_assert_int_eq(SSL_CTX_set1_groups_list(cctx, groups), 1);
  ck_assert_int_eq(SSL_CTX_use_certificate(cctx, cert), 1);
  ck_assert_int_eq(SSL_CTX_use_PrivateKey(cctx, key), 1);
  SSL *c = SSL_new(cctx), *s = SSL_new(server);
  BIO *cb, *sb;
  ck_assert_int_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  int cdone = 0, sdone = 0;
  for (int i = 0; i < 20 && !(cdone && sdone); i++) {
    cdone = cdone || SSL_do_handshake(c) == 1;
    sdone = sdone || SSL_do_handshake(s) == 1;
  }
  /* TLS 1.3 sends the client certificate after the client is done. */
  char byte;
  int delivered = SSL_write(c, "x", 1) == 1 && SSL_read(s, &byte, 1) == 1;
  X509 *peer =
      cdone && sdone && delivered ? SSL_get1_peer_certificate(s) : NULL;
  if (peer && tls12_ciphers)
    ck_assert_str_eq(SSL_get_cipher_name(s), tls12_ciphers);
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  return peer;
}

static X509 *handshake_as(SSL_CTX *server, X509 *cert, EVP_PKEY *key)
{
  return handshake_offering(server, cert, key, NULL, NULL);
}

/* The server decodes a self-signed client certificate on key and
 * checks the client's proof of it (key is freed). */
static void client_cert_accepted(SSL_CTX *server, EVP_PKEY *key)
{
  ck_assert_ptr_nonnull(key);
  const char *alg = EVP_PKEY_get0_type_name(key);
  static const struct certgen_ext no_extensions[] = {{0, NULL}};
  const struct certgen_signer self = {
      NULL, key, strncmp(alg, "ED", 2) == 0 ? NULL : EVP_sha256()};
  X509 *cert = certgen_sign(key, "dev-1", 1, no_extensions, &self);
  ck_assert_ptr_nonnull(cert);
  X509 *peer = handshake_as(server, cert, key);
  ck_assert_msg(peer != NULL, "%s client certificate refused", alg);
  EVP_PKEY *decoded = X509_get0_pubkey(peer);
  ck_assert_msg(decoded && EVP_PKEY_eq(decoded, key) == 1,
                "%s public key not decoded", alg);
  X509_free(peer);
  X509_free(cert);
  EVP_PKEY_free(key);
}

static void count_decoder(OSSL_DECODER *decoder, void *count)
{
  (void)decoder;
  ++*(int *)count;
}

static void count_keymgmt(EVP_KEYMGMT *keymgmt, void *count)
{
  (void)keymgmt;
  ++*(int *)count;
}

/* What a client may negotiate still works on the server's copy: each
 * key exchange group and a TLS 1.2 CBC suite (its MAC key is an HMAC
 * EVP_PKEY), with a P-256 client certificate. */
static void negotiates(SSL_CTX *server, const char *tls12_ciphers,
                       const char *groups)
{
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  static const struct certgen_ext no_extensions[] = {{0, NULL}};
  const struct certgen_signer self = {NULL, key, EVP_sha256()};
  X509 *cert = certgen_sign(key, "dev-1", 1, no_extensions, &self);
  X509 *peer = handshake_offering(server, cert, key, tls12_ciphers, groups);
  ck_assert_msg(peer != NULL, "refused: ciphers %s, groups %s",
                tls12_ciphers ? tls12_ciphers : "(TLS 1.3)",
                groups ? groups : "(default)");
  X509_free(peer);
  X509_free(cert);
  EVP_PKEY_free(key);
}

START_TEST(t_tls_ctx_per_worker)
{
  struct pki_paths p;
  init_ok(&p);
  struct provd_err err = {0};
  struct tls_libs *libs = tls_libs_new(2, &err);
  ck_assert_msg(libs != NULL, "%s", err.msg);
  SSL_CTX *ctx = tls_server_ctx_new(p.cert, p.key, libs, &err);
  ck_assert_msg(ctx != NULL, "%s", err.msg);
  SSL_CTX *w0 = tls_ctx_for_worker(ctx, 0), *w1 = tls_ctx_for_worker(ctx, 1);
  ck_assert_ptr_ne(w0, ctx);
  ck_assert_ptr_ne(w1, ctx);
  ck_assert_ptr_ne(w0, w1);
  ck_assert_ptr_eq(tls_ctx_for_worker(ctx, 2), w0); /* more threads share */
  ck_assert_ptr_eq(tls_ctx_for_worker(ctx, -1), ctx);
  /* The copies carry the same settings and certificate. */
  ck_assert_int_eq(SSL_CTX_get_min_proto_version(w1), TLS1_2_VERSION);
  ck_assert_int_eq(SSL_CTX_get_verify_mode(w1), SSL_VERIFY_PEER);
  ck_assert(SSL_CTX_get_options(w1) & SSL_OP_NO_TICKET);
  ck_assert_int_eq(X509_cmp(SSL_CTX_get0_certificate(w1),
                            SSL_CTX_get0_certificate(ctx)), 0);
  /* And serve mutual-TLS handshakes, the client certificate decoded on
   * the copy's library context, which runs on provd-lean: the key types
   * a TLS client signs with still decode, with a fraction of the default
   * provider's 40 decoders (the point of it). */
  ck_assert_int_eq(tls_libs_lean(libs), 2);
  client_cert_accepted(w1, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
  client_cert_accepted(w1, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"));
  client_cert_accepted(w1,
                       EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
  client_cert_accepted(w0, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
  client_cert_accepted(w0, EVP_PKEY_Q_keygen(NULL, NULL, "ED448"));
  int lean_decoders = 0, default_decoders = 0;
  OSSL_LIB_CTX *probe = OSSL_LIB_CTX_new();
  OSSL_DECODER_do_all_provided(probe, count_decoder, &default_decoders);
  OSSL_LIB_CTX_free(probe);
  OSSL_DECODER_do_all_provided(tls_libs_get(libs, 1), count_decoder,
                               &lean_decoders);
  ck_assert_int_gt(lean_decoders, 0);
  ck_assert_msg(2 * lean_decoders < default_decoders, "%d of %d decoders",
                lean_decoders, default_decoders);
  /* Fewer key managers too (every public key decode walks them all),
   * and none that a handshake needs is missing. */
  int lean_keymgmts = 0, default_keymgmts = 0;
  probe = OSSL_LIB_CTX_new();
  EVP_KEYMGMT_do_all_provided(probe, count_keymgmt, &default_keymgmts);
  OSSL_LIB_CTX_free(probe);
  EVP_KEYMGMT_do_all_provided(tls_libs_get(libs, 1), count_keymgmt,
                              &lean_keymgmts);
  ck_assert_msg(lean_keymgmts > 0 && lean_keymgmts < default_keymgmts,
                "%d of %d key managers", lean_keymgmts, default_keymgmts);
  const char *groups[] = {"X25519", "P-256", "P-384", "P-521", "X448",
                          "ffdhe2048"};
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
    negotiates(w1, NULL, groups[i]);
  negotiates(w1, "ECDHE-ECDSA-AES128-SHA", NULL);
  negotiates(w1, "ECDHE-ECDSA-AES256-SHA384", NULL);
  negotiates(w1, "ECDHE-ECDSA-AES128-GCM-SHA256", "X25519:P-256");
  negotiates(w0, "ECDHE-ECDSA-CHACHA20-POLY1305", "P-256");
  /* A context without copies hands out itself. */
  SSL_CTX *plain = tls_server_ctx_new(p.cert, p.key, NULL, &err);
  ck_assert_ptr_eq(tls_ctx_for_worker(plain, 1), plain);
  SSL_CTX_free(plain);
  SSL_CTX_free(ctx);
  /* A bad key fails with copies too (ASan checks nothing leaks). */
  char path[600];
  path_in(path, sizeof path, "tls/ca.key");
  ck_assert_ptr_null(tls_server_ctx_new(p.cert, path, libs, &err));
  ck_assert_str_eq(err.code, "TLS_CONFIG");
  tls_libs_free(libs);
  ck_assert_ptr_null(tls_libs_new(0, &err));
}
END_TEST

static Suite *pki_suite(void)
{
  Suite *s = suite_create("pki");
  TCase *tc = tcase_create("data-dir");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_fresh_dir_files_and_modes);
  tcase_add_test(tc, t_certificates);
  tcase_add_test(tc, t_connection_string);
  tcase_add_test(tc, t_read_connection_string_errors);
  tcase_add_test(tc, t_second_start_reuses);
  tcase_add_test(tc, t_reissue_with_existing_ca);
  tcase_add_test(tc, t_inconsistent_state_refused);
  tcase_add_test(tc, t_given_cert_used_as_is);
  tcase_add_test(tc, t_tls_ctx);
  tcase_add_test(tc, t_tls_ctx_per_worker);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  umask(022);
  SRunner *sr = srunner_create(pki_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
