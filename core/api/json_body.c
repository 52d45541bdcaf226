#include "api/json_body.h"

#include <strings.h>

int json_body_content_type_ok(const char *content_type)
{
  static const char want[] = "application/json";
  const char *ct = content_type;
  if (!ct)
    return 0;
  while (*ct == ' ')
    ct++;
  if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
    return 0;
  char next = ct[sizeof(want) - 1];
  return next == '\0' || next == ';' || next == ' ';
}

json_t *json_body_read(const char *content_type, const char *body,
                       size_t len, size_t max_len, enum json_body_flags flags,
                       enum json_body_status *status)
{
  *status = JSON_BODY_OK;
  if (len == 0 && (flags & JSON_BODY_OPTIONAL))
    return NULL;
  if (!json_body_content_type_ok(content_type)) {
    *status = JSON_BODY_MEDIA_TYPE;
    return NULL;
  }
  if (len == 0) {
    *status = JSON_BODY_EMPTY;
    return NULL;
  }
  if (len > max_len) {
    *status = JSON_BODY_TOO_LARGE;
    return NULL;
  }
  json_error_t jerr;
  json_t *doc =
      json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!doc) {
    enum json_error_code code = json_error_code(&jerr);
    *status = code == json_error_duplicate_key    ? JSON_BODY_DUPLICATE_KEY
              : code == json_error_stack_overflow ? JSON_BODY_TOO_DEEP
                                                  : JSON_BODY_NOT_JSON;
    return NULL;
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    *status = JSON_BODY_NOT_OBJECT;
    return NULL;
  }
  return doc;
}

const char *json_body_problem(enum json_body_status status)
{
  switch (status) {
  case JSON_BODY_EMPTY:
    return "A JSON request body is required.";
  case JSON_BODY_NOT_JSON:
    return "The request body is not valid JSON.";
  case JSON_BODY_DUPLICATE_KEY:
    return "The request body repeats a key within one JSON object.";
  case JSON_BODY_TOO_DEEP:
    return "The request body nests JSON objects or arrays too deeply.";
  case JSON_BODY_NOT_OBJECT:
    return "The request body must be a JSON object.";
  default:
    return "";
  }
}
