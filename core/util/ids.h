/* Random identifiers for the wire: etags, operation ids, tracking ids. */
#ifndef CORE_UTIL_IDS_H
#define CORE_UTIL_IDS_H

#include <stdint.h>
#include <stddef.h>

/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"; out needs 37 bytes. */
void ids_uuid(char out[37]);
/* A uuid made of 8 random bytes fixed per caller (`prefix`, drawn once)
 * and a counter the caller increments: as unique as ids_uuid, without a
 * call into the RNG per id (version nibble 8, RFC 9562 "custom"). */
void ids_uuid_counted(const unsigned char prefix[8], uint64_t counter,
                      char out[37]);
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
