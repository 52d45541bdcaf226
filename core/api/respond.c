#include "api/respond.h"

#include <stdlib.h>
#include <string.h>

#include "net/wire_error.h"

void api_respond_json(struct http_exchange *ex, int status, json_t *body_take,
                      const struct http_header *extra, size_t n_extra)
{
  char *text = body_take ? json_dumps(body_take, JSON_COMPACT |
                                                     JSON_ENCODE_ANY)
                         : NULL;
  int lost = body_take && !text;
  json_decref(body_take);
  if (lost) {
    api_respond_reason(ex, "INTERNAL", NULL);
    return;
  }
  http_respond(ex, status, API_JSON_CONTENT_TYPE, text ? text : "",
               text ? strlen(text) : 0, extra, n_extra);
  free(text);
}

void api_respond_error(struct http_exchange *ex, int status, int error_code,
                       const char *message)
{
  api_respond_error_with(ex, status, error_code, message, NULL, 0);
}

void api_respond_error_with(struct http_exchange *ex, int status,
                            int error_code, const char *message,
                            const struct http_header *extra, size_t n_extra)
{
  struct wire_error_answer a;
  wire_error_answer_init(&a, status, error_code, message, extra, n_extra);
  http_respond(ex, a.http_status, WIRE_ERROR_CONTENT_TYPE, a.body, a.body_len,
               a.headers, a.n_headers);
  wire_error_answer_clear(&a);
}

void api_respond_reason(struct http_exchange *ex, const char *reason,
                        const char *message)
{
  struct wire_error w = wire_error_of(reason);
  /* An unauthenticated caller learns nothing beyond "Unauthorized". */
  if (!message || w.http_status == 401)
    message = w.message;
  api_respond_error(ex, w.http_status, w.error_code, message);
}
