/* Validation and normalisation of service-API documents: individual
 * enrollments, enrollment groups and bulk operations (DPS wire shapes,
 * the public DPS service REST reference), plus the small wire helpers the
 * service API needs (id rules, etags, paging tokens).
 *
 * Everything here is pure (no I/O, no store) except key generation, which
 * draws from the OpenSSL CSPRNG.  Errors come back as PROVD_E_INVAL with a
 * message that is safe to send to the client (never a key). */
#ifndef CORE_API_ENROLLMENT_JSON_H
#define CORE_API_ENROLLMENT_JSON_H

#include <stddef.h>
#include <jansson.h>

#include "util/err.h"

#define ENROLLMENT_ID_MAX 128   /* DPS registration / group id limit */
#define ENROLLMENT_BULK_MAX 10  /* items per bulk operation [SPEC] */
#define ENROLLMENT_ETAG_MAX 128 /* longest If-Match / etag we accept */
#define ENROLLMENT_HUBS_MAX 50  /* iotHubs entries (DPS linked-hub limit) */
#define CREDENTIAL_POLICY_MAX 128 /* credentialPolicyName, in bytes */

enum enrollment_kind {
  ENROLLMENT_INDIVIDUAL = 1, /* id field "registrationId" */
  ENROLLMENT_GROUP = 2       /* id field "enrollmentGroupId" */
};

/* "registrationId" or "enrollmentGroupId". */
const char *enrollment_id_field(enum enrollment_kind kind);

/* 1 when id follows the DPS rules: 1..128 chars of [A-Za-z0-9-._:], the
 * last one alphanumeric or '-'. */
int enrollment_id_valid(const char *id);

/* Validates and normalises a client document in place:
 *  - the id field must be a valid id; when path_id is given the field may
 *    be absent (it is then filled in) but must equal path_id ignoring case;
 *  - read-only fields (etag, createdDateTimeUtc, lastUpdatedDateTimeUtc,
 *    registrationState) are dropped, JSON nulls of optional fields too;
 *  - attestation must be symmetricKey or x509 (api/x509_json.h; tpm:
 *    not supported yet);
 *    missing keys are generated (64 random bytes, base64), given keys must
 *    be base64 of 16..64 bytes;
 *  - provisioningStatus (default "enabled"), allocationPolicy, iotHubs,
 *    iotHubHostName, credentialPolicyName (the certificate issuer that
 *    signs CSRs, tls/issuer.h), initialTwin, reprovisionPolicy (defaults
 *    true/true),
 *    capabilities (default iotEdge false), customAllocationDefinition,
 *    deviceId / optionalDeviceInformation (individual only) are checked;
 *    enum values are canonicalised;
 *  - other top-level fields are kept as they are.
 * On success *attestation_type (may be NULL) gets the canonical type, a
 * static string.  Returns PROVD_OK or PROVD_E_INVAL (err set). */
int enrollment_normalize(enum enrollment_kind kind, json_t *doc,
                         const char *path_id, const char **attestation_type,
                         struct provd_err *err);

/* Removes the symmetric keys (attestation.symmetricKey.primaryKey and
 * secondaryKey) from a stored document, for query answers (DPS never
 * lists keys) and for callers without EnrollmentWrite (provd's GET keeps
 * them for the others, as the wire traces show). */
void enrollment_strip_keys(json_t *doc);

/* 1 when policy is one of DPS's allocationPolicy values (canonical case);
 * another name is a third-party plugin's. */
int enrollment_policy_is_dps(const char *policy);

/* Sets createdDateTimeUtc, lastUpdatedDateTimeUtc and etag (in this
 * order, after any other field).  PROVD_OK or PROVD_E_NOMEM. */
int enrollment_stamp(json_t *doc, const char *created, const char *updated,
                     const char *etag);

/* Normalises an If-Match value or an item's etag for comparison with
 * stored etags (which are quoted strings): trims blanks, drops a weak
 * "W/" prefix, adds the double quotes when the client left them out; "*"
 * stays "*".  -1 when empty or longer than ENROLLMENT_ETAG_MAX. */
int enrollment_etag_normalize(const char *in, char *out, size_t out_cap);

/* ---- bulk operations ---- */

enum bulk_mode {
  BULK_CREATE = 1,
  BULK_UPDATE = 2,
  BULK_UPDATE_IF_MATCH = 3, /* "updateIfMatchETag" */
  BULK_DELETE = 4
};

struct bulk_item {
  char id[ENROLLMENT_ID_MAX + 1];
  char etag[ENROLLMENT_ETAG_MAX + 3]; /* normalised; "" when none */
  json_t *doc;                  /* owned: normalised document (not for
                                   delete: the item as sent) */
  const char *attestation_type; /* static; NULL for delete */
};

struct bulk_request {
  enum bulk_mode mode;
  size_t n;
  struct bulk_item items[ENROLLMENT_BULK_MAX];
};

/* Parses {"mode":..,"enrollments"|"enrollmentGroups":[..]} with 1..10
 * items, each validated as by enrollment_normalize (delete items need only
 * a valid id; updateIfMatchETag items need an etag).  Item documents are
 * copied; `body` is not modified.  On failure nothing is left to free. */
int enrollment_bulk_parse(enum enrollment_kind kind, const json_t *body,
                          struct bulk_request *out, struct provd_err *err);
void enrollment_bulk_clear(struct bulk_request *b);
/* The wire name of a mode ("create", "updateIfMatchETag", ...). */
const char *enrollment_bulk_mode_name(enum bulk_mode mode);

/* ---- paging ---- */

#define PAGE_SIZE_DEFAULT 100
#define PAGE_SIZE_MAX 1000

/* x-ms-max-item-count: NULL -> default; a decimal >= 1 (values above the
 * maximum are clamped).  -1 for anything else. */
int page_size_parse(const char *text, size_t *out);

/* Continuation token = base64url (no padding) of the last id returned.
 * encode: caller frees; NULL on a bad id.  decode: -1 unless the token
 * decodes to a valid id that fits in out. */
char *continuation_encode(const char *last_id);
int continuation_decode(const char *token, char *out, size_t out_cap);

#endif
