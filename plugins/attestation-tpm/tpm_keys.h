/* The TPM public keys a device sends (EK, SRK): parsed with tss2-mu,
 * named as the TPM names them, turned into OpenSSL keys.  Private to the
 * tpm plugin (and its fuzz target). */
#ifndef TPM_KEYS_H
#define TPM_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

/* Longest marshalled key accepted from a device: an RSA-4096 TPM2B_PUBLIC
 * with a SHA-512 policy is < 700 bytes. */
#define TPM_KEY_MAX_BYTES 1024
#define TPM_NAME_MAX (2 + EVP_MAX_MD_SIZE)

struct tpm_key {
  TPMT_PUBLIC pub;                   /* unmarshalled */
  uint8_t name[TPM_NAME_MAX];        /* u16 nameAlg || H(TPMT_PUBLIC) */
  size_t name_len;
  const EVP_MD *name_md;             /* hash of nameAlg */
  uint32_t exponent;                 /* 0 in the structure means 65537 */
  EVP_PKEY *rsa;                     /* owned; tpm_key_clear frees */
};

/* Parses a marshalled TPM2B_PUBLIC holding an RSA key with a SHA-1/256/
 * 384/512 nameAlg and an AES-CFB symmetric definition (EK and SRK are
 * restricted decryption keys).  0, or -1 with a message in why. */
int tpm_key_parse(const uint8_t *buf, size_t len, struct tpm_key *out,
                  char *why, size_t why_len);
void tpm_key_clear(struct tpm_key *k);

/* The digest of a TPM_ALG_ID hash, or NULL for another algorithm. */
const EVP_MD *tpm_md_of(TPMI_ALG_HASH alg);

/* Whether the key an enrollment holds is the EK the device sent.  The
 * enrollment may hold a TPM2B_PUBLIC (what the SDKs send and print), a
 * bare TPMT_PUBLIC or a DER SubjectPublicKeyInfo; the RSA modulus and
 * exponent are compared.  1 same, 0 different, -1 enrolled key
 * unreadable. */
int tpm_key_matches_enrolled(const struct tpm_key *device_ek,
                             const uint8_t *enrolled, size_t enrolled_len);

#endif
