/* How the device and service APIs answer.  Every error answer goes
 * through net/wire_error.h, so its shape has one owner. */
#ifndef CORE_API_RESPOND_H
#define CORE_API_RESPOND_H

#include <stddef.h>
#include <jansson.h>

#include "net/http.h"
#include "net/wire_error.h"

#define API_JSON_CONTENT_TYPE WIRE_ERROR_CONTENT_TYPE

struct reg_outcome; /* engine/engine.h */

/* Sends `body_take` (consumed, may be NULL for an empty body). */
void api_respond_json(struct http_exchange *ex, int status, json_t *body_take,
                      const struct http_header *extra, size_t n_extra);
/* The DPS error answer (see wire_error_answer_init). */
void api_respond_error(struct http_exchange *ex, int status, int error_code,
                       const char *message);
void api_respond_error_with(struct http_exchange *ex, int status,
                            int error_code, const char *message,
                            const struct http_header *extra, size_t n_extra);
/* The documented answer for a reason code (docs/reason-codes.md);
 * message NULL sends the documented message, and a 401 always does. */
void api_respond_reason(struct http_exchange *ex, const char *reason,
                        const char *message);
/* The engine's answer: a refusal as the documented DPS error of its
 * reason, a success as its serialized document (with Retry-After when it
 * asks for one).  Frees out->body_text. */
void api_respond_outcome(struct http_exchange *ex, struct reg_outcome *out);

#endif
