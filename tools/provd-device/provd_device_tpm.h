/* The TPM side of a DPS registration (private to libprovd-device): what
 * the device sends (EK, SRK), the challenge it activates, the SAS token
 * its TPM signs.  Public Azure docs: "TPM attestation" for DPS. */
#ifndef TOOLS_PROVD_DEVICE_TPM_H
#define TOOLS_PROVD_DEVICE_TPM_H

#include <stdint.h>

#include "util/err.h"
#include "tpm_device.h"
#include "util/ids.h"

struct device_tpm;

/* Opens the TPM and reads (or creates) its EK and SRK. */
int device_tpm_open(const char *tcti, struct device_tpm **out,
                    struct provd_err *err);
void device_tpm_close(struct device_tpm *t);

/* base64 TPM2B_PUBLIC, as the register body's tpm.endorsementKey /
 * tpm.storageRootKey; borrowed from t. */
const char *device_tpm_endorsement_key(const struct device_tpm *t);
const char *device_tpm_storage_root_key(const struct device_tpm *t);
/* The id the SDKs derive from the EK (ids_tpm_registration_id). */
void device_tpm_registration_id(const struct device_tpm *t,
                                char out[IDS_TPM_REGID_LEN + 1]);

/* Imports an authenticationKey (base64 activation blob) into the TPM. */
int device_tpm_activate(struct device_tpm *t, const char *blob_b64,
                        struct provd_err *err);
/* Imports it without keeping it in the TPM: *out is the imported object
 * (tpm_device.h), for the credentials file. */
int device_tpm_import_object(struct device_tpm *t, const char *blob_b64,
                             struct tpm_device_key_object *out,
                             struct provd_err *err);

/* "SharedAccessSignature sr=<urlenc(scope/registrations/id)>&sig=..&se=..
 * &skn=registration", signed by the TPM with the imported key, as the
 * Azure TPM clients write it.  Caller frees; NULL with err on failure. */
char *device_tpm_token(struct device_tpm *t, const char *id_scope,
                       const char *registration_id, int64_t expiry,
                       struct provd_err *err);

/* The hub's SAS token for the device, IoT Hub style:
 * "SharedAccessSignature sr=<urlenc({hub}/devices/{deviceId})>&sig=..&se=.."
 * (no skn), signed by TPM2_HMAC with the kept key object loaded under the
 * SRK.  Caller frees; NULL with err (TPM: this TPM cannot load it). */
char *device_tpm_hub_token(struct device_tpm *t,
                           const struct tpm_device_key_object *key,
                           const char *hub, const char *device_id,
                           int64_t expiry, struct provd_err *err);

#endif
