/* The device's TPM through tpm2-tss ESAPI, as the Azure SDKs use it for
 * DPS (public Azure docs: "TPM attestation"):
 *   EK  persistent 0x81010001 (endorsement hierarchy, the SDK template)
 *   SRK persistent 0x81000001 (owner hierarchy)
 *   the DPS identity key, imported from the service's activation blob,
 *       persistent 0x81000100; SAS tokens are signed by TPM2_HMAC with it.
 * Keys already at those handles are reused.  Every transient handle is
 * flushed before a call returns (a TPM without resource manager, such as
 * swtpm, has only three object slots). */
#ifndef TOOLS_TPM_DEVICE_H
#define TOOLS_TPM_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TPM_DEVICE_EK_HANDLE 0x81010001u
#define TPM_DEVICE_SRK_HANDLE 0x81000001u
#define TPM_DEVICE_ID_KEY_HANDLE 0x81000100u
#define TPM_DEVICE_PUBLIC_MAX 1024 /* marshalled TPM2B_PUBLIC */
#define TPM_DEVICE_PRIVATE_MAX 1024 /* marshalled TPM2B_PRIVATE */
#define TPM_DEVICE_HMAC_LEN 32
#define TPM_DEVICE_HMAC_INPUT_MAX 1024 /* one TPM2_HMAC call */

struct tpm_device;

/* tcti: a tpm2-tss TCTI string, e.g. "swtpm:host=127.0.0.1,port=2321" or
 * "device:/dev/tpmrm0".  0, or -1 with err (TPM). */
int tpm_device_open(const char *tcti, struct tpm_device **out,
                    struct provd_err *err);
void tpm_device_close(struct tpm_device *dev);

/* The marshalled TPM2B_PUBLIC of the EK and SRK (what DPS calls
 * endorsementKey and storageRootKey), created and persisted first when
 * absent.  Buffers hold TPM_DEVICE_PUBLIC_MAX bytes. */
int tpm_device_keys(struct tpm_device *dev, uint8_t *ek, size_t *ek_len,
                    uint8_t *srk, size_t *srk_len, struct provd_err *err);

/* Activates and imports a DPS activation blob (authenticationKey, base64
 * decoded), replacing the identity key at TPM_DEVICE_ID_KEY_HANDLE. */
int tpm_device_import(struct tpm_device *dev, const uint8_t *blob,
                      size_t blob_len, struct provd_err *err);

/* An identity key as this TPM imported it under its SRK, marshalled: the
 * TPM2B_PRIVATE is sealed with the SRK's seed (only this TPM, with this
 * SRK, can load it) and the TPM2B_PUBLIC.  The key itself never appears
 * in the clear outside the TPM. */
struct tpm_device_key_object {
  uint8_t priv[TPM_DEVICE_PRIVATE_MAX];
  size_t priv_len;
  uint8_t pub[TPM_DEVICE_PUBLIC_MAX];
  size_t pub_len;
};

/* Activates and imports a blob as tpm_device_import does, but keeps
 * nothing in the TPM: *out gets the imported object. */
int tpm_device_import_object(struct tpm_device *dev, const uint8_t *blob,
                             size_t blob_len,
                             struct tpm_device_key_object *out,
                             struct provd_err *err);

/* HMAC-SHA256 of data with the identity key, computed by the TPM. */
int tpm_device_hmac(struct tpm_device *dev, const uint8_t *data,
                    size_t len, uint8_t out[TPM_DEVICE_HMAC_LEN],
                    struct provd_err *err);

/* The same with a kept key object: loaded under the SRK, used, flushed.
 * err->code TPM when this TPM cannot load it (another TPM, or its SRK
 * was replaced), BAD_CREDENTIALS when it does not parse. */
int tpm_device_hmac_object(struct tpm_device *dev,
                           const struct tpm_device_key_object *key,
                           const uint8_t *data, size_t len,
                           uint8_t out[TPM_DEVICE_HMAC_LEN],
                           struct provd_err *err);

#endif
