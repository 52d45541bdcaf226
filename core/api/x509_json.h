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
 *   or          caReferences.primary[/secondary], names of CAs registered
 *               with provd (below); the store checks they are verified.
 *
 * Registered CAs (DPS "verified certificates", PUT /certificates/{name},
 * a provd extension) are {"name", "certificate", "info", "crl"?,
 * "isVerified", "verificationCode"?}: proof of possession is a
 * certificate whose subject CN is the one-time verification code, signed
 * with the CA's key. */
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

#define X509_CA_CODE_CHARS 32 /* hex characters of a verification code */

/* A registered CA as a client sends it ({"certificate": CA, "crl"?}):
 * checked (one CA certificate, a CRL), normalised in place (name, info,
 * crl as PEM, isVerified false).  PROVD_OK or PROVD_E_INVAL. */
int x509_ca_normalize(json_t *doc, const char *name, struct provd_err *err);

/* A CA replaced by the same certificate stays verified (a new CRL does
 * not undo the proof of possession); a new certificate starts over. */
void x509_ca_keep_verification(json_t *doc, const json_t *old);

/* Stores a fresh one-time verificationCode in doc.  PROVD_OK or
 * PROVD_E_NOMEM. */
int x509_ca_new_code(json_t *doc);

/* Proof of possession: proof_text is a certificate whose subject CN is
 * doc's verificationCode, signed with the CA certificate's key.  On
 * PROVD_OK doc is verified and the code is spent; PROVD_E_INVAL with a
 * message otherwise. */
int x509_ca_verify_proof(json_t *doc, const char *proof_text,
                         struct provd_err *err);

/* attestation.x509.caReferences.<primary|secondary> of a group document,
 * or NULL. */
const char *x509_ca_reference(const json_t *group, const char *which);

#endif
