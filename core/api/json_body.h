/* The one JSON body reader of the HTTPS APIs.  Policy, the same for the
 * device and the service API: the body is a JSON object sent as
 * application/json, no larger than the caller's limit, and a key that
 * appears twice refuses the whole body (two readers of one document must
 * never see different values). */
#ifndef CORE_API_JSON_BODY_H
#define CORE_API_JSON_BODY_H

#include <stddef.h>
#include <jansson.h>

enum json_body_status {
  JSON_BODY_OK = 0,
  JSON_BODY_EMPTY,          /* no body (and JSON_BODY_OPTIONAL not given) */
  JSON_BODY_MEDIA_TYPE,     /* Content-Type is not application/json */
  JSON_BODY_TOO_LARGE,
  JSON_BODY_NOT_JSON,       /* syntax error */
  JSON_BODY_DUPLICATE_KEY,  /* a key twice in one object */
  JSON_BODY_TOO_DEEP,       /* nested beyond the parser's depth limit */
  JSON_BODY_NOT_OBJECT
};

/* What a refused body is told, for the statuses a 400 answers (syntax,
 * duplicate key, depth, not an object, empty); "" for the others. */
const char *json_body_problem(enum json_body_status status);

enum json_body_flags {
  JSON_BODY_REQUIRED = 0,
  JSON_BODY_OPTIONAL = 1    /* an empty body is fine: NULL with JSON_BODY_OK */
};

/* application/json, any case, parameters allowed. */
int json_body_content_type_ok(const char *content_type);

/* Parses body[0..len).  Returns the object (caller frees) or NULL with
 * *status saying why; an optional empty body is NULL with JSON_BODY_OK.
 * With a body the content type is checked first. */
json_t *json_body_read(const char *content_type, const char *body,
                       size_t len, size_t max_len, enum json_body_flags flags,
                       enum json_body_status *status);

#endif
