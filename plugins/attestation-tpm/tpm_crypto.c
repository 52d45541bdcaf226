#include "tpm_crypto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#define HMAC_INPUT_MAX 2048 /* the inputs here are a few hundred bytes */
#define KDF_LABEL_MAX 64

static int hmac3(const EVP_MD *md, const uint8_t *key, size_t key_len,
                 const uint8_t *a, size_t a_len, const uint8_t *b,
                 size_t b_len, const uint8_t *c, size_t c_len, uint8_t *out,
                 unsigned int *out_len)
{
  uint8_t msg[HMAC_INPUT_MAX];
  if (a_len > sizeof(msg) || b_len > sizeof(msg) - a_len ||
      c_len > sizeof(msg) - a_len - b_len)
    return -1;
  if (a_len)
    memcpy(msg, a, a_len);
  if (b_len)
    memcpy(msg + a_len, b, b_len);
  if (c_len)
    memcpy(msg + a_len + b_len, c, c_len);
  size_t n = a_len + b_len + c_len;
  int ok = HMAC(md, key, (int)key_len, msg, n, out, out_len) != NULL;
  OPENSSL_cleanse(msg, n);
  return ok ? 0 : -1;
}

int tpm_hmac(const EVP_MD *md, const uint8_t *key, size_t key_len,
             const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
             uint8_t *out, unsigned int *out_len)
{
  return hmac3(md, key, key_len, a, a_len, b, b_len, NULL, 0, out, out_len);
}

static void be32(uint32_t v, uint8_t out[4])
{
  out[0] = (uint8_t)(v >> 24);
  out[1] = (uint8_t)(v >> 16);
  out[2] = (uint8_t)(v >> 8);
  out[3] = (uint8_t)v;
}

int tpm_kdfa(const EVP_MD *md, const uint8_t *key, size_t key_len,
             const char *label, const uint8_t *ctx_u, size_t u_len,
             size_t bits, uint8_t *out)
{
  size_t label_len = strlen(label) + 1, want = bits / 8, got = 0;
  uint8_t head[4 + KDF_LABEL_MAX], block[EVP_MAX_MD_SIZE], bits_be[4];
  if (label_len > KDF_LABEL_MAX)
    return -1;
  memcpy(head + 4, label, label_len);
  be32((uint32_t)bits, bits_be);
  int ok = 1;
  for (uint32_t i = 1; ok && got < want; i++) {
    unsigned int n = 0;
    be32(i, head);
    ok = hmac3(md, key, key_len, head, 4 + label_len, ctx_u, u_len,
               bits_be, 4, block, &n) == 0;
    size_t take = want - got < n ? want - got : n;
    if (ok)
      memcpy(out + got, block, take);
    got += take;
  }
  OPENSSL_cleanse(block, sizeof(block));
  return ok ? 0 : -1;
}

int tpm_cfb(const uint8_t *key, size_t key_len, uint8_t *data, size_t len,
            int encrypt)
{
  static const uint8_t zero_iv[16];
  const EVP_CIPHER *c = key_len == 16   ? EVP_aes_128_cfb128()
                        : key_len == 24 ? EVP_aes_192_cfb128()
                        : key_len == 32 ? EVP_aes_256_cfb128()
                                        : NULL;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  int ok = c && ctx &&
           EVP_CipherInit_ex(ctx, c, NULL, key, zero_iv, encrypt) == 1 &&
           EVP_CipherUpdate(ctx, data, &n, data, (int)len) == 1 &&
           (size_t)n == len;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -1;
}

int tpm_oaep(EVP_PKEY *key, const EVP_MD *md, const char *label,
             int encrypt, const uint8_t *in, size_t in_len, uint8_t *out,
             size_t *out_len)
{
  size_t label_len = strlen(label) + 1;
  void *label_copy = OPENSSL_memdup(label, label_len);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
  size_t cap = *out_len;
  int ok = label_copy && ctx &&
           (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx))
               == 1 &&
           EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
           EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label_copy,
                                            (int)label_len) == 1;
  if (ok)
    label_copy = NULL; /* owned by ctx now */
  ok = ok &&
       (encrypt ? EVP_PKEY_encrypt(ctx, out, out_len, in, in_len)
                : EVP_PKEY_decrypt(ctx, out, out_len, in, in_len)) == 1 &&
       *out_len <= cap;
  OPENSSL_free(label_copy);
  EVP_PKEY_CTX_free(ctx);
  return ok ? 0 : -1;
}
