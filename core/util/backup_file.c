/* The backup file (backup_file.h): encoding, sealing, and the file I/O
 * both provctl and provd restore need. */
#include "util/backup_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define PLAIN_MAGIC "PROVDBAK"
#define SEALED_MAGIC "PROVDENC"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1
#define KDF_SCRYPT 1
/* scrypt N = 2^15, r = 8, p = 1: 32 MiB and a fraction of a second per
 * guess (OWASP's minimum). */
#define SCRYPT_LOG2_N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
/* What a file may ask for: a crafted header must not buy minutes of CPU. */
#define SCRYPT_MAX_LOG2_N 20
#define SCRYPT_MAX_R 32
#define SCRYPT_MAX_P 16
#define SCRYPT_MAXMEM ((uint64_t)1 << 31)
#define SALT_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define KEY_LEN 32
#define SEALED_HEADER_LEN (MAGIC_LEN + 4 + 4 + SALT_LEN + NONCE_LEN)
#define PLAIN_HEADER_LEN (MAGIC_LEN + 4 + 4)
#define ENTRY_HEADER_LEN (2 + 4 + 8)

/* ---- big-endian integers ---- */

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
  for (int i = bytes - 1; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v = (v << 8) | p[i];
  return v;
}

/* ---- the archive in memory ---- */

void backup_archive_clear(struct backup_archive *a)
{
  for (size_t i = 0; i < a->n; i++) {
    if (a->e[i].data)
      OPENSSL_cleanse(a->e[i].data, a->e[i].len);
    free(a->e[i].data);
  }
  memset(a, 0, sizeof(*a));
}

const struct backup_entry *backup_find(const struct backup_archive *a,
                                       const char *name)
{
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->e[i].name, name) == 0)
      return &a->e[i];
  return NULL;
}

/* Relative, inside the data dir, plain characters, each segment named. */
static int name_valid(const char *name, size_t len)
{
  if (len == 0 || len >= BACKUP_NAME_MAX || name[0] == '/' ||
      name[len - 1] == '/')
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                c == '.' || c == '/';
    if (!plain || (c == '/' && name[i + 1] == '/'))
      return 0;
    int seg_start = i == 0 || name[i - 1] == '/';
    if (seg_start && c == '.')
      return 0; /* no "..", no hidden files */
  }
  return 1;
}

static int add_entry(struct backup_archive *a, const char *name,
                     unsigned mode, unsigned char *data_take, size_t len,
                     struct provd_err *err)
{
  if (a->n >= BACKUP_MAX_ENTRIES || backup_find(a, name)) {
    free(data_take);
    perr_set(err, "BACKUP_DAMAGED", "backup: entry %s comes twice, or "
             "entries are more than %d", name, BACKUP_MAX_ENTRIES);
    return PROVD_E_INVAL;
  }
  struct backup_entry *e = &a->e[a->n++];
  snprintf(e->name, sizeof(e->name), "%s", name);
  e->mode = mode & 0777;
  e->data = data_take;
  e->len = len;
  return PROVD_OK;
}

int backup_read_file(const char *path, unsigned char **out, size_t *len,
                     struct provd_err *err)
{
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int missing = errno == ENOENT;
    perr_set(err, "BACKUP_IO", "cannot read %s: %s", path, strerror(errno));
    return missing ? PROVD_NOT_FOUND : PROVD_E_IO;
  }
  size_t cap = 0, n = 0;
  unsigned char *buf = NULL;
  int rc = PROVD_OK;
  for (;;) {
    if (n == cap) {
      size_t grown = cap ? cap * 2 : 64 * 1024;
      unsigned char *b = grown <= BACKUP_MAX_BYTES + 1 ? realloc(buf, grown)
                                                       : NULL;
      if (!b) {
        perr_set(err, "BACKUP_TOO_LARGE", "%s is larger than %zu bytes or "
                 "memory ran out", path, BACKUP_MAX_BYTES);
        rc = PROVD_E_NOMEM;
        break;
      }
      buf = b;
      cap = grown;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  if (rc == PROVD_OK && ferror(f)) {
    perr_set(err, "BACKUP_IO", "cannot read %s", path);
    rc = PROVD_E_IO;
  }
  fclose(f);
  if (rc != PROVD_OK) {
    if (buf)
      OPENSSL_cleanse(buf, n);
    free(buf);
    return rc;
  }
  *out = buf;
  *len = n;
  return PROVD_OK;
}

int backup_add_file(struct backup_archive *a, const char *name,
                    const char *path, struct provd_err *err)
{
  struct stat sb;
  if (stat(path, &sb) != 0 && errno == ENOENT)
    return PROVD_NOT_FOUND;
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = backup_read_file(path, &data, &len, err);
  if (rc != PROVD_OK)
    return rc;
  return add_entry(a, name, (unsigned)sb.st_mode, data, len, err);
}

/* ---- plain encoding ---- */

int backup_encode(const struct backup_archive *a, unsigned char **out,
                  size_t *out_len, struct provd_err *err)
{
  size_t total = PLAIN_HEADER_LEN + SHA256_DIGEST_LENGTH;
  for (size_t i = 0; i < a->n; i++)
    total += ENTRY_HEADER_LEN + strlen(a->e[i].name) + a->e[i].len;
  unsigned char *buf = total <= BACKUP_MAX_BYTES ? malloc(total) : NULL;
  if (!buf) {
    perr_set(err, "BACKUP_TOO_LARGE", "backup: %zu bytes is more than %zu "
             "or memory ran out", total, BACKUP_MAX_BYTES);
    return PROVD_E_NOMEM;
  }
  unsigned char *p = buf;
  memcpy(p, PLAIN_MAGIC, MAGIC_LEN);
  put_be(p + MAGIC_LEN, FORMAT_VERSION, 4);
  put_be(p + MAGIC_LEN + 4, a->n, 4);
  p += PLAIN_HEADER_LEN;
  for (size_t i = 0; i < a->n; i++) {
    const struct backup_entry *e = &a->e[i];
    size_t name_len = strlen(e->name);
    put_be(p, name_len, 2);
    memcpy(p + 2, e->name, name_len);
    p += 2 + name_len;
    put_be(p, e->mode, 4);
    put_be(p + 4, e->len, 8);
    p += 12;
    if (e->len)
      memcpy(p, e->data, e->len);
    p += e->len;
  }
  SHA256(buf, (size_t)(p - buf), p);
  *out = buf;
  *out_len = total;
  return PROVD_OK;
}

static int damaged(struct provd_err *err, const char *why)
{
  perr_set(err, "BACKUP_DAMAGED", "not a whole provd backup: %s", why);
  return PROVD_E_INVAL;
}

/* One entry at *off; advances it. */
static int decode_entry(const unsigned char *in, size_t end, size_t *off,
                        struct backup_archive *a, struct provd_err *err)
{
  if (end - *off < 2)
    return damaged(err, "truncated");
  size_t name_len = (size_t)get_be(in + *off, 2);
  if (end - *off - 2 < name_len + 12)
    return damaged(err, "truncated");
  char name[BACKUP_NAME_MAX];
  if (!name_valid((const char *)in + *off + 2, name_len))
    return damaged(err, "an entry name is not a plain relative path");
  memcpy(name, in + *off + 2, name_len);
  name[name_len] = '\0';
  *off += 2 + name_len;
  unsigned mode = (unsigned)get_be(in + *off, 4);
  uint64_t size = get_be(in + *off + 4, 8);
  *off += 12;
  if (size > end - *off)
    return damaged(err, "truncated");
  unsigned char *data = malloc(size ? size : 1);
  if (!data) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return PROVD_E_NOMEM;
  }
  memcpy(data, in + *off, size);
  *off += size;
  return add_entry(a, name, mode, data, size, err);
}

int backup_decode(const unsigned char *in, size_t len,
                  struct backup_archive *a, struct provd_err *err)
{
  memset(a, 0, sizeof(*a));
  if (len < PLAIN_HEADER_LEN + SHA256_DIGEST_LENGTH ||
      memcmp(in, PLAIN_MAGIC, MAGIC_LEN) != 0)
    return damaged(err, "no provd backup header");
  if (get_be(in + MAGIC_LEN, 4) != FORMAT_VERSION)
    return damaged(err, "written by a newer provd (unknown format version)");
  size_t end = len - SHA256_DIGEST_LENGTH;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(in, end, digest);
  if (CRYPTO_memcmp(digest, in + end, sizeof(digest)) != 0)
    return damaged(err, "checksum mismatch (truncated or altered)");
  uint64_t n = get_be(in + MAGIC_LEN + 4, 4);
  if (n > BACKUP_MAX_ENTRIES)
    return damaged(err, "too many entries");
  size_t off = PLAIN_HEADER_LEN;
  for (uint64_t i = 0; i < n; i++) {
    int rc = decode_entry(in, end, &off, a, err);
    if (rc != PROVD_OK) {
      backup_archive_clear(a);
      return rc;
    }
  }
  if (off != end) {
    backup_archive_clear(a);
    return damaged(err, "bytes after the last entry");
  }
  return PROVD_OK;
}

/* ---- sealing ---- */

int backup_is_sealed(const unsigned char *in, size_t len)
{
  return len >= MAGIC_LEN && memcmp(in, SEALED_MAGIC, MAGIC_LEN) == 0;
}

static int derive_key(const char *passphrase, const unsigned char *kdf,
                      const unsigned char *salt, unsigned char *key,
                      struct provd_err *err)
{
  if (kdf[0] != KDF_SCRYPT || kdf[1] > SCRYPT_MAX_LOG2_N || kdf[1] < 10 ||
      kdf[2] == 0 || kdf[2] > SCRYPT_MAX_R || kdf[3] == 0 ||
      kdf[3] > SCRYPT_MAX_P) {
    perr_set(err, "BACKUP_DAMAGED", "backup: unknown key derivation");
    return PROVD_E_INVAL;
  }
  if (EVP_PBE_scrypt(passphrase, strlen(passphrase), salt, SALT_LEN,
                     (uint64_t)1 << kdf[1], kdf[2], kdf[3], SCRYPT_MAXMEM,
                     key, KEY_LEN) != 1) {
    perr_set(err, "BACKUP_CRYPTO", "backup: scrypt failed");
    return PROVD_E_INTERNAL;
  }
  return PROVD_OK;
}

/* AES-256-GCM over in (len bytes) into out; the header is authenticated.
 * Encrypting writes the tag, decrypting checks it. */
static int gcm(int encrypt, const unsigned char *key,
               const unsigned char *header, const unsigned char *in,
               size_t len, unsigned char *out, unsigned char *tag)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int outl = 0, ok = ctx != NULL;
  const unsigned char *nonce = header + SEALED_HEADER_LEN - NONCE_LEN;
  ok = ok && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
                               encrypt) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
                                 NULL) == 1;
  ok = ok && EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) == 1;
  ok = ok && EVP_CipherUpdate(ctx, NULL, &outl, header,
                              SEALED_HEADER_LEN) == 1;
  /* EVP takes int lengths: feed the data in chunks. */
  for (size_t done = 0; ok && done < len;) {
    int chunk = len - done > (1 << 30) ? (1 << 30) : (int)(len - done);
    ok = EVP_CipherUpdate(ctx, out + done, &outl, in + done, chunk) == 1;
    done += (size_t)chunk;
  }
  if (ok && !encrypt)
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
  ok = ok && EVP_CipherFinal_ex(ctx, out + len, &outl) == 1;
  if (ok && encrypt)
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -1;
}

int backup_seal(const unsigned char *plain, size_t len,
                const char *passphrase, unsigned char **out,
                size_t *out_len, struct provd_err *err)
{
  if (!passphrase || !passphrase[0]) {
    perr_set(err, "BACKUP_PASSPHRASE", "backup: empty passphrase");
    return PROVD_E_INVAL;
  }
  size_t total = SEALED_HEADER_LEN + len + TAG_LEN;
  unsigned char *buf = malloc(total);
  if (!buf) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return PROVD_E_NOMEM;
  }
  memcpy(buf, SEALED_MAGIC, MAGIC_LEN);
  put_be(buf + MAGIC_LEN, FORMAT_VERSION, 4);
  unsigned char *kdf = buf + MAGIC_LEN + 4;
  kdf[0] = KDF_SCRYPT;
  kdf[1] = SCRYPT_LOG2_N;
  kdf[2] = SCRYPT_R;
  kdf[3] = SCRYPT_P;
  unsigned char *salt = kdf + 4;
  unsigned char key[KEY_LEN];
  int rc = RAND_bytes(salt, SALT_LEN + NONCE_LEN) == 1 ? PROVD_OK
                                                       : PROVD_E_INTERNAL;
  if (rc != PROVD_OK)
    perr_set(err, "BACKUP_CRYPTO", "backup: no random bytes");
  if (rc == PROVD_OK)
    rc = derive_key(passphrase, kdf, salt, key, err);
  if (rc == PROVD_OK &&
      gcm(1, key, buf, plain, len, buf + SEALED_HEADER_LEN,
          buf + SEALED_HEADER_LEN + len) != 0) {
    perr_set(err, "BACKUP_CRYPTO", "backup: AES-256-GCM failed");
    rc = PROVD_E_INTERNAL;
  }
  OPENSSL_cleanse(key, sizeof(key));
  if (rc != PROVD_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_len = total;
  return PROVD_OK;
}

int backup_open_sealed(const unsigned char *in, size_t len,
                       const char *passphrase, unsigned char **plain,
                       size_t *plain_len, struct provd_err *err)
{
  if (!backup_is_sealed(in, len) || len < SEALED_HEADER_LEN + TAG_LEN)
    return damaged(err, "no sealed provd backup header");
  if (get_be(in + MAGIC_LEN, 4) != FORMAT_VERSION)
    return damaged(err, "written by a newer provd (unknown format version)");
  size_t n = len - SEALED_HEADER_LEN - TAG_LEN;
  unsigned char *buf = malloc(n + 1);
  unsigned char key[KEY_LEN];
  unsigned char tag[TAG_LEN];
  if (!buf) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return PROVD_E_NOMEM;
  }
  memcpy(tag, in + len - TAG_LEN, TAG_LEN);
  int rc = derive_key(passphrase, in + MAGIC_LEN + 4, in + MAGIC_LEN + 8,
                      key, err);
  if (rc == PROVD_OK &&
      gcm(0, key, in, in + SEALED_HEADER_LEN, n, buf, tag) != 0) {
    perr_set(err, "BACKUP_BAD_PASSPHRASE",
             "wrong passphrase, or the backup file was altered");
    rc = PROVD_DENIED;
  }
  OPENSSL_cleanse(key, sizeof(key));
  if (rc != PROVD_OK) {
    OPENSSL_cleanse(buf, n);
    free(buf);
    return rc;
  }
  *plain = buf;
  *plain_len = n;
  return PROVD_OK;
}

/* ---- passphrase and files ---- */

int backup_passphrase(const char *file, char *out, size_t cap,
                      struct provd_err *err)
{
  out[0] = '\0';
  if (!file) {
    const char *env = getenv(BACKUP_PASSPHRASE_ENV);
    if (!env)
      return PROVD_NOT_FOUND;
    if (strlen(env) >= cap) {
      perr_set(err, "BACKUP_PASSPHRASE", "%s is too long",
               BACKUP_PASSPHRASE_ENV);
      return PROVD_E_INVAL;
    }
    snprintf(out, cap, "%s", env);
  } else {
    FILE *f = fopen(file, "r");
    if (!f) {
      perr_set(err, "BACKUP_PASSPHRASE", "cannot read the passphrase file "
               "%s: %s", file, strerror(errno));
      return PROVD_E_IO;
    }
    if (!fgets(out, (int)cap, f))
      out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
  }
  if (!out[0]) {
    perr_set(err, "BACKUP_PASSPHRASE", "the passphrase (%s) is empty",
             file ? file : BACKUP_PASSPHRASE_ENV);
    return PROVD_E_INVAL;
  }
  return PROVD_OK;
}
