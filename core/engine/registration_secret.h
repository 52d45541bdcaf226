/* The secret a stored registration may hold: the hub key an attestation
 * plugin made for the device (attest_set_hub_key in provd/host.h; a TPM
 * device's imported key).  It stays in the store for the hub connectors
 * (notify/hub_sync.c); every view of a registration that leaves the core
 * (device answers, the service API) goes through
 * registration_hide_secrets first. */
#ifndef CORE_ENGINE_REGISTRATION_SECRET_H
#define CORE_ENGINE_REGISTRATION_SECRET_H

#include <jansson.h>

/* Stores the hub key (base64) in a registration body. */
void registration_set_hub_key(json_t *body, const char *key_b64);
/* The stored hub key (base64), borrowed from body, or NULL. */
const char *registration_hub_key(const json_t *body);
/* Removes what only the core may read. */
void registration_hide_secrets(json_t *body);

#endif
