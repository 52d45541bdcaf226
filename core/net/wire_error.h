/* The one place that turns a reason code into what a client sees: HTTP
 * status, DPS errorCode and message (docs/reason-codes.md), and the DPS
 * error answer itself (body, x-ms-error-code, Retry-After).  The device
 * API, the service API, the engine and the HTTP layer's own refusals all
 * go through here, so the wire shape has one owner. */
#ifndef CORE_NET_WIRE_ERROR_H
#define CORE_NET_WIRE_ERROR_H

#include <stddef.h>

#include "net/http.h"

#define WIRE_ERROR_CONTENT_TYPE "application/json; charset=utf-8"
#define WIRE_ERROR_EXTRA_HEADERS_MAX 4

struct wire_error {
  int http_status;
  int error_code;      /* DPS errorCode: HTTP status * 1000 + sub-code */
  const char *message; /* static */
};

/* The documented mapping of `reason`.  Unknown reasons (plugins may
 * invent their own) map to 401/401002 "Unauthorized": a refusal never
 * tells an unauthenticated caller more than DPS would. */
struct wire_error wire_error_of(const char *reason);

/* What may be published about a refusal to anyone who can read the
 * metrics (unauthenticated): the reason itself, except that every 401
 * folds into the class the wire shows ("UNAUTHORIZED" or
 * "INVALID_CERTIFICATE"), so counters cannot tell an enrolled id with a
 * wrong key from an unknown one.  Logs keep the real reason. */
const char *wire_error_public_reason(const char *reason);

/* Seconds of Retry-After an error answer carries: for 429 and 503 (the
 * SDKs retry those) 1, or with a spread set a random 1..spread so that a
 * fleet refused at once does not come back at once; 0 (no header) for
 * every other status. */
int wire_error_retry_after_s(int http_status);
/* `limits.retry_after_max`; 1 (the default) spreads nothing. */
void wire_error_set_retry_spread(int max_s);

/* A DPS error answer ready to send: body
 * {"errorCode":N,"trackingId":"..","message":"..","timestampUtc":".."},
 * headers x-ms-error-code, Retry-After when due, then the caller's extra
 * headers.  headers[] points into the struct itself: do not copy it. */
struct wire_error_answer {
  int http_status;
  const char *body; /* heap_body or fallback_body */
  size_t body_len;
  char *heap_body;
  char fallback_body[64];
  struct http_header headers[2 + WIRE_ERROR_EXTRA_HEADERS_MAX];
  size_t n_headers;
  char code_text[16];
  char retry_text[16];
};

/* Never fails: without memory the body is a fixed text with the same
 * errorCode.  Extra headers beyond WIRE_ERROR_EXTRA_HEADERS_MAX are
 * dropped; their strings are borrowed until the answer is sent. */
void wire_error_answer_init(struct wire_error_answer *a, int http_status,
                            int error_code, const char *message,
                            const struct http_header *extra, size_t n_extra);
void wire_error_answer_clear(struct wire_error_answer *a);

#endif
