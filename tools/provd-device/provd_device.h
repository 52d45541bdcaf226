/* libprovd-device: the device side of the DPS registration flow over
 * HTTPS, as the Azure SDKs do it (DPS device REST API, "Runtime
 * Registration" in the public Azure REST reference):
 * PUT .../register with a SAS token, then poll .../operations/{id} on the
 * same connection, honouring Retry-After, until the service decides.
 * Symmetric keys (individual key or group key), an X.509 client
 * certificate (mutual TLS, no token), or TPM 2.0 (the challenge round:
 * the service's key is activated and imported into the TPM, which then
 * signs the tokens). */
#ifndef TOOLS_PROVD_DEVICE_H
#define TOOLS_PROVD_DEVICE_H

#include "util/err.h"

#define PROVD_DEVICE_DEFAULT_URL "https://localhost:8443"
#define PROVD_DEVICE_DEFAULT_API_VERSION "2019-03-31"
/* The first api-version whose register takes a `csr` (DPS certificate
 * issuance); the default when csr_b64 is set. */
#define PROVD_DEVICE_CSR_API_VERSION "2025-07-01-preview"
#define PROVD_DEVICE_DEFAULT_TIMEOUT_S 30
#define PROVD_DEVICE_MAX_ID 256 /* scope and registration id, in bytes */

/* Every string is borrowed for the duration of the call. */
struct provd_device_opts {
  const char *url;             /* "https://host:port"; NULL: default URL */
  const char *ca_file;         /* PEM file to trust; NULL: system store */
  const char *id_scope;        /* required */
  const char *registration_id; /* required, except with tpm_tcti: derived
                                  from the EK as the SDKs do */
  const char *symmetric_key;   /* base64 device key ... */
  const char *group_key;       /* ... or base64 group key ... */
  const char *cert_file;       /* ... or a PEM certificate (chain) file */
  const char *key_file;        /* its PEM private key (with cert_file) */
  const char *tpm_tcti;        /* ... or a TPM (tpm2-tss TCTI string) */
  const char *payload_json;    /* NULL or JSON text, sent as "payload" */
  const char *csr_b64;         /* NULL or base64 DER PKCS#10, sent as "csr"
                                  (provd_device_csr_from_key_file) */
  const char *api_version;     /* NULL: PROVD_DEVICE_DEFAULT_API_VERSION */
  int timeout_s;               /* bounds the whole flow; 0: default */
  const char *user_agent;      /* NULL: "provd-device/<version>" */
};

/* What the service said.  Strings are "" when the service did not say. */
struct provd_device_result {
  char registration_id[PROVD_DEVICE_MAX_ID]; /* the one used */
  char status[32];        /* last operation status: assigned, failed, ... */
  char operation_id[256];
  char assigned_hub[256];
  char device_id[256];
  long http_status;       /* of the last answer; 0 when none arrived */
  long error_code;        /* DPS 6-digit errorCode; 0 when none */
  char error_message[512];
  int polls;              /* operation-status requests made */
  char *registration_state_json; /* compact JSON or NULL; owned */
};

/* Runs the registration.  Returns 0 when the device was assigned (result
 * has hub and device id).  Otherwise -1 with err->code one of:
 *   BAD_INPUT              an option is missing or invalid
 *   NETWORK, TLS, TIMEOUT  no (timely) answer; TIMEOUT also when the
 *                          service was still assigning at the deadline
 *   HTTP_ERROR             a non-2xx answer (result has status, errorCode)
 *   BAD_RESPONSE           an answer that is not DPS-shaped
 *   REGISTRATION_FAILED    status "failed" (result has errorCode)
 *   REGISTRATION_DISABLED  status "disabled"
 *   UNEXPECTED_STATUS      any other final status
 * result is filled as far as the exchange got; release it with
 * provd_device_result_clear even on failure. */
int provd_device_register(const struct provd_device_opts *opts,
                          struct provd_device_result *result,
                          struct provd_err *err);
void provd_device_result_clear(struct provd_device_result *result);

/* ---- certificate issuance (DPS `csr` -> issuedCertificateChain) ---- */

/* A CSR for registration_id (subject CN) signed with the private key in
 * key_file (PEM).  When key_file does not exist an ECDSA P-384 key (what
 * DPS issuance requires) is generated and written there, mode 0600.
 * *b64_take: base64 DER PKCS#10, caller frees.  0, or -1 with err->code
 * BAD_INPUT (unreadable or encrypted key, file exists but holds no key)
 * or IO. */
int provd_device_csr_from_key_file(const char *key_file,
                                   const char *registration_id,
                                   char **b64_take, struct provd_err *err);

/* registrationState.issuedCertificateChain (base64 DER, leaf first) from
 * state_json as PEM text in the same order; *pem_take: caller frees.
 * Returns how many certificates it holds, or -1 with err->code
 * NO_CERTIFICATE (the answer has no chain) or BAD_RESPONSE (an item is
 * not a certificate). */
int provd_device_issued_chain_pem(const char *state_json, char **pem_take,
                                  struct provd_err *err);

#endif
