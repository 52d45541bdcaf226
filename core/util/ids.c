#include "util/ids.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static void uuid_format(unsigned char b[16], int version, char out[37])
{
  static const char hex[] = "0123456789abcdef";
  b[6] = (unsigned char)((b[6] & 0x0f) | (version << 4));
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = '\0';
}

/* Random bytes for ids, drawn from OpenSSL's generator 512 at a time:
 * each RAND_bytes call costs microseconds of locking and bookkeeping,
 * and every registration takes several ids on the store writer. */
static int id_random(unsigned char *out, size_t n)
{
  static _Thread_local unsigned char pool[512];
  static _Thread_local size_t left;
  if (n > sizeof(pool))
    return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
  if (left < n) {
    if (RAND_bytes(pool, sizeof(pool)) != 1)
      return -1;
    left = sizeof(pool);
  }
  memcpy(out, pool + sizeof(pool) - left, n);
  OPENSSL_cleanse(pool + sizeof(pool) - left, n); /* never handed out twice */
  left -= n;
  return 0;
}

void ids_uuid(char out[37])
{
  unsigned char b[16];
  if (id_random(b, sizeof(b)) != 0) {
    /* RAND_bytes only fails when the OS has no entropy source at all;
     * an all-zero id is still unique enough never to be trusted. */
    for (int i = 0; i < 16; i++)
      b[i] = 0;
  }
  uuid_format(b, 4, out);
}

void ids_uuid_counted(const unsigned char prefix[8], uint64_t counter,
                      char out[37])
{
  unsigned char b[16];
  memcpy(b, prefix, 8);
  for (int i = 0; i < 8; i++)
    b[8 + i] = (unsigned char)(counter >> (56 - 8 * i));
  /* The variant bits overwrite the counter's top two bits: 2^62 ids per
   * prefix before a repeat. */
  uuid_format(b, 8, out);
}

void ids_etag(char out[40])
{
  char u[37];
  ids_uuid(u);
  snprintf(out, 40, "\"%s\"", u);
}

void ids_operation(char out[64])
{
  unsigned char b[8] = {0};
  char u[37];
  id_random(b, sizeof(b));
  ids_uuid(u);
  snprintf(out, 64, "5.%02x%02x%02x%02x%02x%02x%02x%02x.%s", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], u);
}

int ids_registration_id_valid(const char *id)
{
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 128)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != ':')
      return 0;
  }
  return isalnum((unsigned char)id[0]) &&
         (isalnum((unsigned char)id[n - 1]) || id[n - 1] == '-');
}

void ids_tpm_registration_id(const unsigned char *ek, size_t ek_len,
                             char out[IDS_TPM_REGID_LEN + 1])
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(ek, ek_len, digest);
  /* 256 bits = 51 groups of 5 bits and one of 1 bit (padded with 0s). */
  size_t n = 0;
  unsigned int acc = 0, bits = 0;
  for (size_t i = 0; i < sizeof(digest); i++) {
    acc = (acc << 8) | digest[i];
    bits += 8;
    while (bits >= 5) {
      out[n++] = alphabet[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0)
    out[n++] = alphabet[(acc << (5 - bits)) & 31];
  out[n] = '\0';
}
