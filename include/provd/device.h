/* libprovd-device: the device side of provd (and of Azure DPS).
 *
 *   register   the DPS registration flow over HTTPS, as the Azure SDKs do
 *              it (DPS device REST API, "Runtime Registration" in the
 *              public Azure REST reference): PUT .../register, then poll
 *              .../operations/{id} on the same connection, honouring
 *              Retry-After, until the service decides; or the same over
 *              DPS MQTT ($dps/registrations/... topics).  Symmetric keys
 *              (individual key or group key), an X.509 client certificate
 *              (mutual TLS, no token), or TPM 2.0 (the challenge round).
 *   keep       the outcome in a credentials file (mode 0600), so a device
 *              that reboots connects without registering again
 *   send       telemetry to the assigned hub over MQTT (TLS), as an IoT
 *              Hub device does: client id = device id, username
 *              {hub}/{deviceId}/?api-version=..., a SAS token over
 *              {hub}/devices/{deviceId} signed with the device key (by
 *              the TPM for a TPM device), topic
 *              devices/{deviceId}/messages/events/
 *
 * Build against it with `pkg-config --cflags --libs provd-device`.  Calls
 * block; each bounds its own time.  Errors come back as a stable reason
 * code plus a message in struct provd_err. */
#ifndef PROVD_DEVICE_H
#define PROVD_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PROVD_DEVICE_API __attribute__((visibility("default")))

#define PROVD_DEVICE_DEFAULT_URL "https://localhost:8443"
#define PROVD_DEVICE_DEFAULT_API_VERSION "2019-03-31"
/* The first api-version whose register takes a `csr` (DPS certificate
 * issuance); the default when csr_b64 is set. */
#define PROVD_DEVICE_CSR_API_VERSION "2025-07-01-preview"
#define PROVD_DEVICE_DEFAULT_TIMEOUT_S 30
#define PROVD_DEVICE_MAX_ID 256 /* scope and registration id, in bytes */

/* Every string is borrowed for the duration of the call. */
struct provd_device_opts {
  const char *url;             /* "https://host:port", or
                                  "mqtts://host[:port]" for DPS over MQTT
                                  (not TPM); NULL: default URL */
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
  /* Transient answers (429, 5xx) are sent again after Retry-After when the
   * service gives one, else after an exponential backoff from 1 s; either
   * way plus up to 25 % random jitter, so a fleet that was throttled
   * together does not come back together. */
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
  char *payload_json;     /* registrationState.payload as JSON, or NULL */
  char *issued_certificate_pem; /* the chain issued for csr_b64 (PEM, leaf
                                   first), or NULL; owned */
  char reason[64];        /* err->code of a failed call; "" on success */
  int retries;            /* requests sent again after 429 / 5xx */
};

/* Runs the registration.  Returns 0 when the device was assigned (result
 * has hub and device id).  Otherwise -1 with err->code one of:
 *   BAD_INPUT              an option is missing or invalid
 *   NETWORK, TLS, TIMEOUT  no (timely) answer; TIMEOUT also when the
 *                          service was still assigning at the deadline
 *   NOT_AUTHORIZED         over MQTT: the CONNECT was refused (a wrong
 *                          key, an unknown device)
 *   HTTP_ERROR             a non-2xx answer (result has status, errorCode)
 *   BAD_RESPONSE           an answer that is not DPS-shaped
 *   REGISTRATION_FAILED    status "failed" (result has errorCode)
 *   REGISTRATION_DISABLED  status "disabled"
 *   UNEXPECTED_STATUS      any other final status
 * result is filled as far as the exchange got; release it with
 * provd_device_result_clear even on failure. */
PROVD_DEVICE_API int provd_device_register(
    const struct provd_device_opts *opts, struct provd_device_result *result,
    struct provd_err *err);
PROVD_DEVICE_API void provd_device_result_clear(
    struct provd_device_result *result);

/* ---- certificate issuance (DPS `csr` -> issuedCertificateChain) ---- */

/* A CSR for registration_id (subject CN) signed with the private key in
 * key_file (PEM).  When key_file does not exist an ECDSA P-384 key (what
 * DPS issuance requires) is generated and written there, mode 0600.
 * *b64_take: base64 DER PKCS#10, caller frees.  0, or -1 with err->code
 * BAD_INPUT (unreadable or encrypted key, file exists but holds no key)
 * or IO. */
PROVD_DEVICE_API int provd_device_csr_from_key_file(
    const char *key_file, const char *registration_id, char **b64_take,
    struct provd_err *err);

/* registrationState.issuedCertificateChain (base64 DER, leaf first) from
 * state_json as PEM text in the same order; *pem_take: caller frees.
 * Returns how many certificates it holds, or -1 with err->code
 * NO_CERTIFICATE (the answer has no chain) or BAD_RESPONSE (an item is
 * not a certificate). */
PROVD_DEVICE_API int provd_device_issued_chain_pem(const char *state_json,
                                                   char **pem_take,
                                                   struct provd_err *err);

/* ---- the credentials file ---- */

/* What a device keeps after it was assigned (JSON, mode 0600). */
struct provd_device_credentials {
  char id_scope[PROVD_DEVICE_MAX_ID];
  char registration_id[PROVD_DEVICE_MAX_ID];
  char assigned_hub[256];
  char device_id[256];
  char symmetric_key[128];  /* the device key (derived for groups), or "" */
  char cert_file[1024];     /* X.509: the certificate and key files, or "" */
  char key_file[1024];
  /* A TPM device's file also holds its TPM and the hub key as the TPM
   * imported it; provd_device_send_file and provd_device_tpm_hub_token
   * read them. */
};

/* Writes what the hub connection needs from opts and an assigned result
 * to path (replaced atomically, mode 0600); with opts->tpm_tcti it asks
 * the TPM to import the hub key first (see "TPM devices on the hub").
 * 0, or -1 with err->code BAD_INPUT (not assigned; a TPM answer without
 * authenticationKey), IO or TPM. */
PROVD_DEVICE_API int provd_device_credentials_save(
    const char *path, const struct provd_device_opts *opts,
    const struct provd_device_result *result, struct provd_err *err);

/* Reads path.  0; -1 with err->code NOT_FOUND (no file), IO, or
 * BAD_CREDENTIALS (not a credentials file, or readable by others). */
PROVD_DEVICE_API int provd_device_credentials_load(
    const char *path, struct provd_device_credentials *out,
    struct provd_err *err);

/* ---- telemetry ---- */

#define PROVD_DEVICE_HUB_PORT 8883
#define PROVD_DEVICE_HUB_API_VERSION "2021-04-12"

struct provd_device_hub_opts {
  const char *host;       /* NULL: the assigned hub's host name */
  int port;               /* 0: PROVD_DEVICE_HUB_PORT */
  const char *ca_file;    /* PEM file to trust; NULL: system store */
  int timeout_s;          /* bounds the connect and each message; 0: 30 */
};

/* Connects to the hub as the device, publishes each message (JSON text)
 * to devices/{deviceId}/messages/events/ at QoS 1 and waits for the
 * hub's acknowledgement, interval_s apart, then disconnects.  0, or -1
 * with err->code BAD_INPUT, UNSUPPORTED (TPM devices: see
 * provd_device_send_file), NETWORK, TLS, NOT_AUTHORIZED (the hub refused
 * the device) or TIMEOUT; *sent (may be NULL) counts the acknowledged
 * messages. */
PROVD_DEVICE_API int provd_device_send(
    const struct provd_device_credentials *cred,
    const struct provd_device_hub_opts *hub, const char *const *messages,
    size_t n_messages, double interval_s, size_t *sent,
    struct provd_err *err);

/* ---- TPM devices on the hub ----
 * A TPM device's hub key never leaves its TPM in the clear.  For a
 * registration with tpm_tcti, provd_device_credentials_save imports the
 * assigned answer's registrationState.tpm.authenticationKey (the key the
 * hub identity was created with, wrapped for this TPM) and keeps what the
 * TPM made of it -- the TPM2B_PRIVATE, sealed to the TPM's storage root
 * key (0x81000001), and the TPM2B_PUBLIC -- with the TCTI in the
 * credentials file.  Hub tokens are then signed by TPM2_HMAC with that
 * object, loaded under the SRK for each token; another TPM cannot load
 * it. */

/* The hub's SAS token for the device whose credentials file is
 * credentials_path: "SharedAccessSignature sr=<url-encoded
 * {hub}/devices/{deviceId}>&sig=...&se=<expiry_unix>" (no skn), as an IoT
 * Hub device sends it as its MQTT password.  tpm_tcti: the TPM to sign
 * with, NULL for the one the file names.  *token_take: caller frees.  0,
 * or -1 with err->code NOT_FOUND, IO, BAD_CREDENTIALS (not a TPM device's
 * file), BAD_INPUT or TPM (the TPM cannot be reached or cannot load the
 * key: another TPM, or its storage root key was replaced). */
PROVD_DEVICE_API int provd_device_tpm_hub_token(const char *credentials_path,
                                                const char *tpm_tcti,
                                                int64_t expiry_unix,
                                                char **token_take,
                                                struct provd_err *err);

/* provd_device_send for the device whose credentials file is
 * credentials_path, whatever its mechanism: its key, its certificate, or
 * its TPM (tokens from provd_device_tpm_hub_token; tpm_tcti NULL: the
 * file's).  The same returns, and those of provd_device_credentials_load
 * and provd_device_tpm_hub_token. */
PROVD_DEVICE_API int provd_device_send_file(
    const char *credentials_path, const char *tpm_tcti,
    const struct provd_device_hub_opts *hub, const char *const *messages,
    size_t n_messages, double interval_s, size_t *sent,
    struct provd_err *err);

#ifdef __cplusplus
}
#endif
#endif /* PROVD_DEVICE_H */
