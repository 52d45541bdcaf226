/* Certificate issuers (provd.yaml `certificate_issuers:`): a CA chain and
 * the issuing CA's private key, loaded and checked once at start.  An
 * enrollment names one in `credentialPolicyName`; the engine has it sign
 * the CSR a device sent with its registration (DPS certificate issuance).
 * The key never leaves this module and is never logged.  Signing (about
 * 1.5 ms of CPU with ECDSA P-384) runs on store reader threads, never on
 * an event loop or the store writer.  Issuers are read-only after loading: any thread may
 * sign concurrently. */
#ifndef CORE_TLS_ISSUER_H
#define CORE_TLS_ISSUER_H

#include <jansson.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "tls/csr.h"
#include "util/err.h"

/* Limits on the operator's files: a chain, not a bundle of the world. */
#define ISSUER_MAX_FILE_BYTES (64 * 1024)
#define ISSUER_MAX_CHAIN 8

struct issuer;
struct issuer_set;

/* Loads every configured issuer.  Refuses (ISSUER_CONFIG, the message
 * starting FILE:LINE:COL of the issuer's item, naming the issuer and the
 * file): a key file readable by group or others, an encrypted
 * or unreadable key, a key that is neither EC nor RSA, a certificate
 * file that is not a chain from the key's CA certificate (CA:TRUE) up to
 * a self-signed root that OpenSSL's verifier accepts today.  *out_take is
 * an empty set when no issuer is configured.  Caller frees. */
int issuers_load(const struct provd_config *cfg, struct issuer_set **out_take,
                 struct provd_err *err);
void issuers_free(struct issuer_set *set);

/* The issuer called name, or NULL (also when set is NULL). */
const struct issuer *issuers_find(const struct issuer_set *set,
                                  const char *name);

/* Which CSR keys this issuer signs. */
enum csr_key_rule issuer_key_rule(const struct issuer *iss);

/* Signs a certificate for registration_id (subject CN) with the CSR's
 * public key: CA:FALSE, digitalSignature, clientAuth, the issuer's
 * validity (never past the CA's own notAfter), SHA-384.  Nothing else of
 * the CSR is copied.  *chain_take: JSON array of base64 DER certificates,
 * the new one first, then the issuer's chain up to the root.  PROVD_OK or
 * an error with code CSR_ISSUANCE_FAILED. */
int issuer_sign(const struct issuer *iss, X509_REQ *req,
                const char *registration_id, json_t **chain_take,
                struct provd_err *err);

#endif
