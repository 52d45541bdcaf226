#include "net/wire_error.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "util/ids.h"
#include "util/timefmt.h"

/* Every authentication failure looks the same on the wire. */
#define UNAUTHORIZED 401, 401002, "Unauthorized"
/* ... except a refused client certificate, which DPS names. */
#define INVALID_CERTIFICATE_MESSAGE "Invalid certificate."
#define INVALID_CERTIFICATE 401, 401002, INVALID_CERTIFICATE_MESSAGE

static const struct {
  const char *reason;
  struct wire_error wire;
} reasons[] = {
    /* refusals of the device's proof */
    {"ENROLLMENT_NOT_FOUND", {UNAUTHORIZED}},
    {"MISSING_TOKEN", {UNAUTHORIZED}},
    {"MALFORMED_TOKEN", {UNAUTHORIZED}},
    {"TOKEN_RESOURCE_MISMATCH", {UNAUTHORIZED}},
    {"BAD_KEY_NAME", {UNAUTHORIZED}},
    {"BAD_SIGNATURE", {UNAUTHORIZED}},
    {"TOKEN_EXPIRED", {UNAUTHORIZED}},
    {"TOKEN_LIFETIME_TOO_LONG", {UNAUTHORIZED}},
    {"ATTESTATION_MISMATCH", {UNAUTHORIZED}},
    {"ATTESTATION_UNAVAILABLE", {UNAUTHORIZED}},
    {"TPM_EK_MISMATCH", {UNAUTHORIZED}},
    {"TPM_BAD_BLOB", {UNAUTHORIZED}},
    {"TPM_CHALLENGE_EXPIRED", {UNAUTHORIZED}},
    {"TPM_CHALLENGE_REPLAYED", {UNAUTHORIZED}},
    /* X.509 refusals: DPS says the same for every certificate problem */
    {"CERT_MISSING", {INVALID_CERTIFICATE}},
    {"CERT_CN_MISMATCH", {INVALID_CERTIFICATE}},
    {"CERT_UNTRUSTED", {INVALID_CERTIFICATE}},
    {"CERT_EXPIRED", {INVALID_CERTIFICATE}},
    {"CERT_NOT_YET_VALID", {INVALID_CERTIFICATE}},
    {"CERT_REVOKED", {INVALID_CERTIFICATE}},
    {"ENROLLMENT_DISABLED", {INVALID_CERTIFICATE}},
    /* the request's shape */
    {"BAD_REQUEST", {400, 400004, "Bad request."}},
    {"CSR_NOT_CONFIGURED",
     {400, 400000,
      "Device sent CSR but it is not configured in the service."}},
    /* a CSR from an authenticated device that provd will not sign */
    {"CSR_MALFORMED",
     {400, 400004, "The csr is not a base64 DER PKCS#10 request."}},
    {"CSR_BAD_SIGNATURE",
     {400, 400004, "The CSR signature does not verify."}},
    {"CSR_KEY_UNSUPPORTED",
     {400, 400004, "The CSR key type is not allowed (ECDSA P-384 expected)."}},
    {"CSR_CN_MISMATCH",
     {400, 400004,
      "The CSR subject common name must equal the registration id."}},
    /* allocation: answered as a failed operation carrying this errorCode */
    {"NO_HUB_AVAILABLE",
     {400, 400208, "No IoT hub could be selected for the device."}},
    {"ALLOCATION_POLICY_UNAVAILABLE",
     {400, 400208, "No IoT hub could be selected for the device."}},
    {"ALLOCATION_WEBHOOK_FAILED", {400, 400207, "Custom allocation failed."}},
    {"NOT_FOUND", {404, 404000, "Not found."}},
    {"UNKNOWN_ID_SCOPE", {404, 404001, "Unknown ID scope."}},
    {"REGISTRATION_NOT_FOUND", {404, 404203, "Registration not found."}},
    {"OPERATION_NOT_FOUND", {404, 404204, "Operation not found."}},
    {"METHOD_NOT_ALLOWED", {405, 405000, "Method not allowed."}},
    {"UNSUPPORTED_MEDIA_TYPE",
     {415, 415001, "Content-Type must be application/json."}},
    /* answered by the HTTP layer before any handler runs */
    {"MALFORMED_REQUEST", {400, 400000, "Bad request"}},
    {"REQUEST_TIMEOUT", {408, 408000, "Request timed out"}},
    {"PAYLOAD_TOO_LARGE", {413, 413000, "Request body too large"}},
    {"EXPECTATION_UNSUPPORTED", {417, 417000, "Unsupported Expect header"}},
    {"HEADERS_TOO_LARGE", {431, 431000, "Request header fields too large"}},
    {"TRANSFER_ENCODING_UNSUPPORTED",
     {501, 501000, "Transfer-Encoding is not supported"}},
    {"HTTP_VERSION_UNSUPPORTED", {505, 505000, "HTTP version not supported"}},
    /* ours, not the device's */
    {"THROTTLED", {429, 429001, "Too many requests, retry later."}},
    {"INTERNAL", {500, 500001, "Internal error."}},
    /* A plugin that could not decide is our fault, not the device's. */
    {"ATTESTATION_ERROR", {500, 500001, "Internal error."}},
    {"CSR_ISSUANCE_FAILED", {500, 500001, "Internal error."}},
    {"STORE_UNAVAILABLE", {503, 503001, "Service unavailable, retry later."}},
};

struct wire_error wire_error_of(const char *reason)
{
  for (size_t i = 0; reason && i < sizeof(reasons) / sizeof(reasons[0]); i++)
    if (strcmp(reason, reasons[i].reason) == 0)
      return reasons[i].wire;
  return (struct wire_error){UNAUTHORIZED};
}

const char *wire_error_public_reason(const char *reason)
{
  struct wire_error w = wire_error_of(reason);
  if (w.http_status != 401)
    return reason;
  return strcmp(w.message, INVALID_CERTIFICATE_MESSAGE) == 0
             ? "INVALID_CERTIFICATE"
             : "UNAUTHORIZED";
}

static atomic_int retry_spread_s = 1;

void wire_error_set_retry_spread(int max_s)
{
  atomic_store(&retry_spread_s, max_s > 1 ? max_s : 1);
}

int wire_error_retry_after_s(int http_status)
{
  if (http_status != 429 && http_status != 503)
    return 0;
  int spread = atomic_load_explicit(&retry_spread_s, memory_order_relaxed);
  if (spread <= 1)
    return 1;
  /* A hint, not a secret: a per-thread xorshift is enough to spread a
   * fleet that was refused in the same second. */
  static _Thread_local uint32_t x;
  if (!x)
    x = (uint32_t)time_mono_ns() | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return 1 + (int)(x % (uint32_t)spread);
}

/* The DPS error body; NULL without memory. */
static char *error_body(int error_code, const char *message)
{
  char tracking[37], now[32];
  ids_uuid(tracking);
  time_iso8601(time_now_ms(), now);
  json_t *body = json_pack("{s:i,s:s,s:s,s:s}", "errorCode", error_code,
                           "trackingId", tracking, "message",
                           message ? message : "Error.", "timestampUtc", now);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  return text;
}

void wire_error_answer_init(struct wire_error_answer *a, int http_status,
                            int error_code, const char *message,
                            const struct http_header *extra, size_t n_extra)
{
  memset(a, 0, sizeof(*a));
  a->http_status = http_status;
  a->heap_body = error_body(error_code, message);
  if (a->heap_body) {
    a->body = a->heap_body;
  } else { /* only a number varies: nothing to escape */
    snprintf(a->fallback_body, sizeof(a->fallback_body),
             "{\"errorCode\":%d,\"message\":\"Error.\"}", error_code);
    a->body = a->fallback_body;
  }
  snprintf(a->code_text, sizeof(a->code_text), "%d", error_code);
  a->headers[a->n_headers++] =
      (struct http_header){"x-ms-error-code", a->code_text};
  int retry = wire_error_retry_after_s(http_status);
  if (retry > 0) {
    snprintf(a->retry_text, sizeof(a->retry_text), "%d", retry);
    a->headers[a->n_headers++] =
        (struct http_header){"Retry-After", a->retry_text};
  }
  for (size_t i = 0; i < n_extra && i < WIRE_ERROR_EXTRA_HEADERS_MAX; i++)
    a->headers[a->n_headers++] = extra[i];
  a->body_len = strlen(a->body);
}

void wire_error_answer_clear(struct wire_error_answer *a)
{
  free(a->heap_body);
  a->heap_body = NULL;
  a->body = NULL;
  a->body_len = 0;
}
