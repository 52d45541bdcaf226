/* libFuzzer target over the TPM structures a device sends (EK, SRK) and
 * the enrolled key forms (plugins/attestation-tpm/tpm_keys.c), and the
 * activation blob built for them (tpm_blob.c).
 * Input: u16 big-endian length L || device key (L bytes) || enrolled key.
 * Besides "no crash, no out-of-bounds access" it checks:
 *  - a parsed key is RSA with a name of 2 + digest bytes whose first two
 *    bytes are its nameAlg, and an exponent that is never 0;
 *  - a key always matches itself as enrolled (its own TPM2B_PUBLIC);
 *  - a challenge built with it as EK and SRK is made of exactly the six
 *    structures of the DPS layout, which tss2-mu reads back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "tpm_blob.h"
#include "tpm_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok)
{
  if (!ok)
    abort();
}

/* The six parts in order, nothing after them. */
static void check_blob_layout(const uint8_t *b, size_t len)
{
  /* tss2-mu refuses to unmarshal into a TPM2B whose size is not 0. */
  TPM2B_ID_OBJECT cred = {0};
  TPM2B_ENCRYPTED_SECRET secret = {0}, seed = {0};
  TPM2B_PRIVATE dup = {0};
  TPM2B_PUBLIC pub = {0};
  TPM2B_DATA uri = {0};
  size_t off = 0;
  require(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(b, len, &off, &cred) == 0);
  require(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(b, len, &off, &secret) ==
          0);
  require(Tss2_MU_TPM2B_PRIVATE_Unmarshal(b, len, &off, &dup) == 0);
  require(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(b, len, &off, &seed) == 0);
  require(Tss2_MU_TPM2B_PUBLIC_Unmarshal(b, len, &off, &pub) == 0);
  require(Tss2_MU_TPM2B_DATA_Unmarshal(b, len, &off, &uri) == 0);
  require(off == len && uri.size == 0);
  require(pub.publicArea.type == TPM2_ALG_KEYEDHASH);
}

static void check_key(const struct tpm_key *k, const uint8_t *raw,
                      size_t len)
{
  require(k->rsa != NULL && k->pub.type == TPM2_ALG_RSA);
  require(k->exponent != 0);
  require(k->name_len == 2 + (size_t)EVP_MD_get_size(k->name_md));
  require(((k->name[0] << 8) | k->name[1]) == k->pub.nameAlg);
  require(tpm_key_matches_enrolled(k, raw, len) == 1);
  static uint8_t blob[TPM_BLOB_MAX];
  size_t blob_len = 0;
  char why[96];
  uint8_t key[TPM_IDENTITY_KEY_LEN] = {7};
  require(tpm_activation_blob(k, k, key, blob, sizeof(blob), &blob_len, why,
                              sizeof(why)) == 0);
  check_blob_layout(blob, blob_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  size_t dev_len = (size_t)((data[0] << 8) | data[1]);
  if (dev_len > size - 2)
    dev_len = size - 2;
  size_t enr_len = size - 2 - dev_len;
  /* Exact-size copies: one byte too far is caught. */
  uint8_t *dev = malloc(dev_len ? dev_len : 1);
  uint8_t *enr = malloc(enr_len ? enr_len : 1);
  require(dev && enr);
  memcpy(dev, data + 2, dev_len);
  memcpy(enr, data + 2 + dev_len, enr_len);
  struct tpm_key k;
  char why[128];
  if (tpm_key_parse(dev, dev_len, &k, why, sizeof(why)) == 0) {
    check_key(&k, dev, dev_len);
    int m = tpm_key_matches_enrolled(&k, enr, enr_len);
    require(m >= -1 && m <= 1);
  } else {
    require(k.rsa == NULL && why[0] != '\0');
  }
  tpm_key_clear(&k);
  free(dev);
  free(enr);
  return 0;
}
