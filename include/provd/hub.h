/* Hub connector plugins: make sure a device identity exists (or not) on
 * the hub it was assigned to.  Kept apart from allocation so that policy
 * and side effects never mix. */
#ifndef PROVD_HUB_H
#define PROVD_HUB_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

struct provd_device {
  uint32_t struct_size;
  const char *hub_name;
  const char *hub_hostname;
  const char *device_id;
  const char *registration_id;
  const char *symmetric_key;       /* base64, or NULL: the enrollment's
                                      key (derived for a group member),
                                      or the key attestation made (TPM,
                                      attest_set_hub_key) */
  const char *x509_thumbprint;     /* SHA-256 hex, or NULL */
  const struct provd_cfg *initial_twin; /* or NULL */
};

struct provd_hub_ops {
  uint32_t struct_size;
  /* Idempotent create-or-update. */
  int (*ensure_device)(void *state, struct provd_call *call,
                       const struct provd_device *dev,
                       struct provd_err *err);
  int (*remove_device)(void *state, struct provd_call *call,
                       const struct provd_device *dev,
                       struct provd_err *err);
  /* PROVD_OK when the hub answers. */
  int (*health)(void *state, struct provd_err *err);
};

#ifdef __cplusplus
}
#endif
#endif /* PROVD_HUB_H */
