/* Enrollment groups that name registered CAs (attestation.x509.
 * caReferences) are handed to attestation plugins as if they held the
 * CAs themselves: the plugin sees signingCertificates (and the CAs' CRLs
 * in attestation.x509.crl) and never reads the store. */
#ifndef CORE_ENGINE_CA_REFS_H
#define CORE_ENGINE_CA_REFS_H

#include <jansson.h>

#include "store/store.h"

/* A copy of group with caReferences resolved to the verified CAs they
 * name (an unverified or missing CA is left out, so it trusts nothing);
 * NULL when the group names no CA (use it as it is).  Caller frees. */
json_t *ca_refs_resolve(struct store_session *s, const json_t *group);

#endif
