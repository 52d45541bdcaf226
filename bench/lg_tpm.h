/* The benchmark's software TPM: an EK and an SRK (RSA-2048 private keys
 * from a PEM file) and what a device does with a DPS activation blob,
 * in software (ActivateCredential + Import), so the load generator
 * replays the TPM flow with the device's cryptography but no TPM. */
#ifndef BENCH_LG_TPM_H
#define BENCH_LG_TPM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define LG_TPM_KEY_LEN 32 /* the HMAC key the service wraps */

struct lg_tpm {
  EVP_PKEY *ek, *srk;    /* owned */
  char *ek_b64, *srk_b64; /* base64 TPM2B_PUBLIC, owned */
  uint8_t srk_name[34];  /* 0x000b || SHA-256(TPMT_PUBLIC) */
};

/* Reads two PEM RSA private keys (EK first, then SRK).  0, or -1 with a
 * message in err. */
int lg_tpm_load(const char *pem_file, struct lg_tpm *t, char *err,
                size_t err_len);
void lg_tpm_free(struct lg_tpm *t);

/* Recovers the key of an activation blob as a TPM holding t's EK and SRK
 * would (the outer integrity HMACs checked).  0 or -1. */
int lg_tpm_activate(const struct lg_tpm *t, const uint8_t *blob,
                    size_t len, uint8_t key[LG_TPM_KEY_LEN]);

#endif
