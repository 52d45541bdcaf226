#include "api/respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/json_text.h"

void api_respond_json(struct http_exchange *ex, int status, json_t *body_take,
                      const struct http_header *extra, size_t n_extra)
{
  char *text = body_take ? json_text(body_take, 0) : NULL;
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

void api_respond_outcome(struct http_exchange *ex, struct reg_outcome *out)
{
  if (out->error_code) {
    api_respond_error(ex, out->http_status, out->error_code,
                      wire_error_of(out->reason).message);
    return;
  }
  char retry[16];
  struct http_header extra[1];
  size_t n_extra = 0;
  if (out->retry_after_s > 0) {
    snprintf(retry, sizeof(retry), "%d", out->retry_after_s);
    extra[n_extra++] = (struct http_header){"Retry-After", retry};
  }
  http_respond(ex, out->http_status, API_JSON_CONTENT_TYPE, out->body_text,
               strlen(out->body_text), extra, n_extra);
  free(out->body_text);
  out->body_text = NULL;
}
