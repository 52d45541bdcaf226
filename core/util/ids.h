/* Random identifiers for the wire: etags, operation ids, tracking ids. */
#ifndef CORE_UTIL_IDS_H
#define CORE_UTIL_IDS_H

#include <stddef.h>

/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"; out needs 37 bytes. */
void ids_uuid(char out[37]);
/* A service-API etag: the uuid in double quotes; out needs 39 bytes. */
void ids_etag(char out[40]);
/* A DPS-looking operation id "5.<16 hex>.<uuid>"; out needs 56 bytes. */
void ids_operation(char out[64]);

/* DPS naming rule for registration and enrollment group ids: 1..128
 * characters from A-Z a-z 0-9 - . _ :, starting with a letter or digit and
 * ending with a letter, digit or '-'.  1 when valid. */
int ids_registration_id_valid(const char *id);

/* The registration id the Azure SDKs use for a TPM device when none is
 * given: lowercase base32 (RFC 4648 alphabet, no padding) of SHA-256 of
 * the endorsement key exactly as sent (its marshalled TPM2B_PUBLIC).
 * out needs IDS_TPM_REGID_LEN + 1 bytes. */
#define IDS_TPM_REGID_LEN 52
void ids_tpm_registration_id(const unsigned char *ek, size_t ek_len,
                             char out[IDS_TPM_REGID_LEN + 1]);

#endif
