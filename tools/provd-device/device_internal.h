/* What the files of libprovd-device share beyond the public header. */
#ifndef TOOLS_PROVD_DEVICE_INTERNAL_H
#define TOOLS_PROVD_DEVICE_INTERNAL_H

#include <stddef.h>

#include "provd/device.h"

/* The device key as base64: the given symmetric key, or the one derived
 * from the group key for opts->registration_id.  0 or -1 (BAD_INPUT). */
int device_key_b64(const struct provd_device_opts *opts, char *out,
                   size_t cap, struct provd_err *err);

#endif
