/* The TPM 2.0 cryptographic primitives of credential protection and
 * duplication (TPM 2.0 Part 1 §11.4): KDFa, AES-CFB with a zero IV,
 * RSA-OAEP with a label, HMAC.  Both directions, so that test devices
 * (the benchmark's software TPM) undo exactly what tpm_blob.c does. */
#ifndef TPM_CRYPTO_H
#define TPM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* HMAC-md(key, a || b) into out (EVP_MAX_MD_SIZE); *out_len its length.
 * a and b together at most 2 KiB.  0 or -1. */
int tpm_hmac(const EVP_MD *md, const uint8_t *key, size_t key_len,
             const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
             uint8_t *out, unsigned int *out_len);

/* KDFa(key, label, contextU, "", bits) with HMAC-md; the label's NUL is
 * added here.  out holds bits/8 bytes. */
int tpm_kdfa(const EVP_MD *md, const uint8_t *key, size_t key_len,
             const char *label, const uint8_t *ctx_u, size_t u_len,
             size_t bits, uint8_t *out);

/* AES-CFB128 (key of 16, 24 or 32 bytes), zero IV, in place. */
int tpm_cfb(const uint8_t *key, size_t key_len, uint8_t *data, size_t len,
            int encrypt);

/* RSA-OAEP with MGF1, both hashes md, label = `label` plus its NUL (as
 * TPMs use "IDENTITY" and "DUPLICATE").  *out_len: capacity in, length
 * out. */
int tpm_oaep(EVP_PKEY *key, const EVP_MD *md, const char *label,
             int encrypt, const uint8_t *in, size_t in_len, uint8_t *out,
             size_t *out_len);

#endif
