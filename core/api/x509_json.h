/* attestation.x509 of service-API enrollment documents: certificates are
 * parsed here so that nothing unusable is ever stored, and their `info`
 * (DPS X509CertificateInfo) is computed for the answers.
 *
 *   individual: clientCertificates.primary[/secondary].certificate, the
 *               device certificate (PEM or base64 DER);
 *   group:      signingCertificates.primary[/secondary].certificate, a CA
 *               certificate (root or intermediate), and optionally `crl`
 *               (provd extension: a PEM or base64 DER CRL checked on every
 *               registration).
 * caReferences (CAs registered on the instance) are refused for now. */
#ifndef CORE_API_X509_JSON_H
#define CORE_API_X509_JSON_H

#include <jansson.h>

#include "api/enrollment_json.h"
#include "util/err.h"

#define X509_JSON_CERT_MAX (64 * 1024) /* one certificate's text */
#define X509_JSON_CRL_MAX (512 * 1024) /* a group's CRL text */

/* Checks and normalises att.x509 in place (adds `info` next to each
 * certificate; removes client-sent `info`).  PROVD_OK, or PROVD_E_INVAL
 * with a message for the client. */
int x509_attestation_normalize(enum enrollment_kind kind, json_t *att,
                               struct provd_err *err);

#endif
