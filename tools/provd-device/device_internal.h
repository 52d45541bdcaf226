/* What the files of libprovd-device share beyond the public header. */
#ifndef TOOLS_PROVD_DEVICE_INTERNAL_H
#define TOOLS_PROVD_DEVICE_INTERNAL_H

#include <stddef.h>

#include "provd/device.h"
#include "tpm_device.h"

/* The device key as base64: the given symmetric key, or the one derived
 * from the group key for opts->registration_id.  0 or -1 (BAD_INPUT). */
int device_key_b64(const struct provd_device_opts *opts, char *out,
                   size_t cap, struct provd_err *err);

/* What a TPM device's credentials file keeps for the hub: the TCTI it
 * registered with and the hub key as its TPM imported it. */
struct credentials_tpm {
  char tcti[1024];
  struct tpm_device_key_object key;
};

/* 0; -1 with err->code NOT_FOUND, IO or BAD_CREDENTIALS (not a TPM
 * device's file). */
int credentials_load_tpm(const char *path, struct credentials_tpm *out,
                         struct provd_err *err);

#endif
