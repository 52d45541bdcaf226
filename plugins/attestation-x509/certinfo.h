/* Certificate facts as DPS reports them (X509CertificateInfo), as JSON
 * text built without a JSON library: the plugin sees only OpenSSL and
 * include/provd. */
#ifndef X509_CERTINFO_H
#define X509_CERTINFO_H

#include <stddef.h>

#include <openssl/x509.h>

#define CERTINFO_JSON_MAX 4096
#define CERTINFO_STATE_MAX (3 * CERTINFO_JSON_MAX)

/* Uppercase hex digest of the DER certificate (DPS thumbprints). */
int certinfo_thumbprint(const X509 *cert, const EVP_MD *md, char *hex,
                        size_t cap);

/* One X509CertificateInfo object.  0, or -1 when it does not fit. */
int certinfo_json(const X509 *cert, char *out, size_t cap);

/* registrationState.x509: certificateInfo (the leaf), enrollmentGroupId
 * and signingCertificateInfo (the group's anchor, as certinfo_json made
 * it) when given. */
int certinfo_state_json(const X509 *leaf, const char *signer_info,
                        const char *group_id, char *out, size_t cap);

#endif
