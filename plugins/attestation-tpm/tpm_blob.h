/* The DPS "authenticationKey": an HMAC key wrapped so that only the TPM
 * holding a given EK and SRK can use it (MakeCredential to the EK,
 * duplication under the SRK; TPM 2.0 Part 1 §24 and §23.3). */
#ifndef TPM_BLOB_H
#define TPM_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "tpm_keys.h"

#define TPM_IDENTITY_KEY_LEN 32 /* HMAC-SHA256 key the device signs with */
#define TPM_BLOB_MAX 4096       /* RSA-4096 EK and SRK fit */

/* Writes the blob (TPM2B_ID_OBJECT || TPM2B_ENCRYPTED_SECRET ||
 * TPM2B_PRIVATE || TPM2B_ENCRYPTED_SECRET || TPM2B_PUBLIC || TPM2B_DATA)
 * for `key` into out (cap >= TPM_BLOB_MAX).  Every call uses fresh
 * randomness (OpenSSL's CSPRNG).  0, or -1 with a message in why. */
int tpm_activation_blob(const struct tpm_key *ek, const struct tpm_key *srk,
                        const uint8_t key[TPM_IDENTITY_KEY_LEN],
                        uint8_t *out, size_t out_cap,
                        size_t *out_len, char *why, size_t why_len);

#endif
