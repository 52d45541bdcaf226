/* How the device and service APIs answer.  Every error answer goes
 * through net/wire_error.h, so its shape has one owner. */
#ifndef CORE_API_RESPOND_H
#define CORE_API_RESPOND_H

#include <stddef.h>
#include <jansson.h>

#include "net/http.h"

#define API_JSON_CONTENT_TYPE "application/json; charset=utf-8"

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

#endif
