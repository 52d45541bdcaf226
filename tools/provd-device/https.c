#include "https.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#define HTTPS_MAX_HEADERS 16
#define HTTPS_MAX_HEADER_LINE 8192

struct https_client {
  CURL *curl;
  char base_url[HTTPS_MAX_URL];
  char *ca_file;    /* owned */
  char *cert_file;  /* owned; NULL: no client certificate */
  char *key_file;   /* owned */
  char *user_agent; /* owned */
  long timeout_s;
};

/* The answer being read; the curl callbacks fill it. */
struct https_reader {
  struct https_response *rs;
  size_t cap;
  size_t max_body;
  int too_large;
  int header_too_long;
};

static int curl_users; /* curl_global_init is reference-counted by hand */

struct https_client *https_client_new(const char *base_url,
                                      const char *ca_file,
                                      const char *user_agent,
                                      long timeout_s, struct provd_err *err)
{
  size_t len = strlen(base_url);
  if (len == 0 || len >= HTTPS_MAX_URL - 1024) {
    perr_set(err, "BAD_URL", "URL is empty or too long");
    return NULL;
  }
  if (strncasecmp(base_url, "https://", 8) != 0) {
    perr_set(err, "BAD_URL", "URL must start with https:// (got \"%s\")",
             base_url);
    return NULL;
  }
  struct https_client *c = calloc(1, sizeof(*c));
  if (!c) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return NULL;
  }
  if (curl_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
    perr_set(err, "NETWORK", "libcurl failed to initialise");
    free(c);
    return NULL;
  }
  curl_users++; /* from here on https_client_free undoes it */
  c->curl = curl_easy_init();
  c->ca_file = ca_file ? strdup(ca_file) : NULL;
  c->user_agent = strdup(user_agent ? user_agent : "provd-tools");
  if (!c->curl || (ca_file && !c->ca_file) || !c->user_agent) {
    perr_set(err, "NO_MEMORY", "out of memory");
    https_client_free(c);
    return NULL;
  }
  snprintf(c->base_url, sizeof(c->base_url), "%s", base_url);
  while (len > 0 && c->base_url[len - 1] == '/')
    c->base_url[--len] = '\0';
  c->timeout_s = timeout_s > 0 ? timeout_s : 30;
  return c;
}

void https_client_free(struct https_client *c)
{
  if (!c)
    return;
  if (c->curl)
    curl_easy_cleanup(c->curl);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c->user_agent);
  free(c);
  if (curl_users > 0 && --curl_users == 0)
    curl_global_cleanup();
}

int https_client_set_identity(struct https_client *c, const char *cert_file,
                              const char *key_file, struct provd_err *err)
{
  free(c->cert_file);
  free(c->key_file);
  c->cert_file = strdup(cert_file);
  c->key_file = strdup(key_file);
  if (!c->cert_file || !c->key_file) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  return 0;
}

void https_response_clear(struct https_response *rs)
{
  free(rs->body);
  memset(rs, 0, sizeof(*rs));
  rs->retry_after_s = -1;
}

int https_ok(const struct https_response *rs)
{
  return rs->status >= 200 && rs->status < 300;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
  struct https_reader *r = ud;
  struct https_response *rs = r->rs;
  size_t n = size * nmemb;
  if (n > r->max_body - rs->body_len) {
    r->too_large = 1;
    return 0; /* makes curl stop with CURLE_WRITE_ERROR */
  }
  if (rs->body_len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < rs->body_len + n + 1)
      cap *= 2;
    char *grown = realloc(rs->body, cap);
    if (!grown)
      return 0;
    rs->body = grown;
    r->cap = cap;
  }
  memcpy(rs->body + rs->body_len, data, n);
  rs->body_len += n;
  rs->body[rs->body_len] = '\0';
  return n;
}

/* Copies value into dst; flags values that do not fit, since a cut
 * continuation token or etag would silently do the wrong thing. */
static void keep_header(struct https_reader *r, char *dst, size_t cap,
                        const char *value, size_t len)
{
  if (len >= cap) {
    r->header_too_long = 1;
    return;
  }
  memcpy(dst, value, len);
  dst[len] = '\0';
}

/* Only a plain number of seconds is honoured; an HTTP date counts as
 * absent.  Capped so a broken server cannot park the client for hours. */
static int parse_retry_after(const char *v, size_t len)
{
  long secs = 0;
  size_t i = 0;
  if (len == 0)
    return -1;
  for (; i < len && isdigit((unsigned char)v[i]); i++) {
    if (secs < 100000)
      secs = secs * 10 + (v[i] - '0');
  }
  if (i == 0 || i != len)
    return -1;
  return secs > 3600 ? 3600 : (int)secs;
}

static int header_is(const char *line, size_t name_len, const char *name)
{
  return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
  struct https_reader *r = ud;
  struct https_response *rs = r->rs;
  size_t n = size * nmemb;
  if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    /* A new status line (after a 100 Continue): forget earlier headers. */
    rs->content_type[0] = rs->etag[0] = rs->continuation[0] = '\0';
    rs->error_code[0] = '\0';
    rs->retry_after_s = -1;
    return n;
  }
  const char *colon = memchr(data, ':', n);
  if (!colon)
    return n;
  size_t name_len = (size_t)(colon - data);
  const char *v = colon + 1;
  size_t vlen = n - name_len - 1;
  while (vlen > 0 && (*v == ' ' || *v == '\t')) {
    v++;
    vlen--;
  }
  while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
    vlen--;
  if (header_is(data, name_len, "content-type"))
    keep_header(r, rs->content_type, sizeof(rs->content_type), v, vlen);
  else if (header_is(data, name_len, "etag"))
    keep_header(r, rs->etag, sizeof(rs->etag), v, vlen);
  else if (header_is(data, name_len, "x-ms-continuation"))
    keep_header(r, rs->continuation, sizeof(rs->continuation), v, vlen);
  else if (header_is(data, name_len, "x-ms-error-code"))
    keep_header(r, rs->error_code, sizeof(rs->error_code), v, vlen);
  else if (header_is(data, name_len, "retry-after"))
    rs->retry_after_s = parse_retry_after(v, vlen);
  return n;
}

/* Appends one header line; on failure frees the whole list. */
static int add_header(struct curl_slist **list, const char *line,
                      struct provd_err *err)
{
  struct curl_slist *next = curl_slist_append(*list, line);
  if (!next) {
    perr_set(err, "NO_MEMORY", "out of memory");
    curl_slist_free_all(*list);
    *list = NULL;
    return -1;
  }
  *list = next;
  return 0;
}

/* Caller frees with curl_slist_free_all; NULL with err set on failure. */
static struct curl_slist *build_headers(const struct https_request *rq,
                                        struct provd_err *err)
{
  char line[HTTPS_MAX_HEADER_LINE];
  struct curl_slist *list = NULL;
  if (rq->n_headers > HTTPS_MAX_HEADERS) {
    perr_set(err, "BAD_REQUEST", "too many request headers");
    return NULL;
  }
  /* "Expect:" stops curl from waiting for a 100 Continue on big bodies. */
  if (add_header(&list, "Accept: application/json", err) != 0 ||
      add_header(&list, "Expect:", err) != 0)
    return NULL;
  /* Without a body, "Content-Type:" keeps curl from inventing
   * application/x-www-form-urlencoded for an empty POST. */
  if (add_header(&list, rq->body ? "Content-Type: application/json; "
                 "charset=utf-8" : "Content-Type:", err) != 0)
    return NULL;
  if (rq->authorization) {
    int w = snprintf(line, sizeof(line), "Authorization: %s",
                     rq->authorization);
    if (w < 0 || (size_t)w >= sizeof(line)) {
      perr_set(err, "BAD_REQUEST", "Authorization value too long");
      curl_slist_free_all(list);
      return NULL;
    }
    if (add_header(&list, line, err) != 0)
      return NULL;
  }
  for (size_t i = 0; i < rq->n_headers; i++) {
    if (add_header(&list, rq->headers[i], err) != 0)
      return NULL;
  }
  return list;
}

static void set_method(CURL *curl, const struct https_request *rq)
{
  if (strcmp(rq->method, "GET") == 0 && !rq->body) {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    return;
  }
  if (strcmp(rq->method, "POST") != 0)
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
  if (rq->body || strcmp(rq->method, "POST") == 0 ||
      strcmp(rq->method, "PUT") == 0) {
    const char *body = rq->body ? rq->body : "";
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)strlen(body));
  }
}

static void describe_curl_error(CURLcode rc, const char *url,
                                const char *detail, struct provd_err *err)
{
  const char *why = detail[0] ? detail : curl_easy_strerror(rc);
  switch (rc) {
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
    perr_set(err, "TLS", "TLS with %s failed: %s", url, why);
    break;
  case CURLE_OPERATION_TIMEDOUT:
    perr_set(err, "TIMEOUT", "no answer from %s in time: %s", url, why);
    break;
  default:
    perr_set(err, "NETWORK", "request to %s failed: %s", url, why);
    break;
  }
}

int https_do(struct https_client *c, const struct https_request *rq,
             struct https_response *rs, struct provd_err *err)
{
  char url[HTTPS_MAX_URL];
  char curl_msg[CURL_ERROR_SIZE] = "";
  struct https_reader reader = {
      .rs = rs, .max_body = rq->max_body ? rq->max_body : HTTPS_MAX_BODY};
  memset(rs, 0, sizeof(*rs));
  rs->retry_after_s = -1;

  int w = snprintf(url, sizeof(url), "%s%s", c->base_url, rq->path);
  if (w < 0 || (size_t)w >= sizeof(url) || rq->path[0] != '/') {
    perr_set(err, "BAD_REQUEST", "request path too long or not absolute");
    return -1;
  }
  struct curl_slist *headers = build_headers(rq, err);
  if (!headers)
    return -1;

  CURL *curl = c->curl;
  /* Reset keeps the live connection, so the next request reuses it. */
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  if (c->ca_file)
    curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
  if (c->cert_file) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, c->cert_file);
    curl_easy_setopt(curl, CURLOPT_SSLKEY, c->key_file);
  }
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT,
                   rq->timeout_s > 0 ? rq->timeout_s : c->timeout_s);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, c->user_agent);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_msg);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reader);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reader);
  set_method(curl, rq);

  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  /* The error buffer lives on this stack frame: detach it. */
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);

  if (reader.too_large) {
    perr_set(err, "TOO_LARGE", "answer from %s exceeds %zu bytes", url,
             reader.max_body);
  } else if (rc != CURLE_OK) {
    describe_curl_error(rc, url, curl_msg, err);
  } else if (reader.header_too_long) {
    perr_set(err, "BAD_RESPONSE", "a response header from %s is too long",
             url);
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &rs->status);
    if (!rs->body) {
      rs->body = calloc(1, 1);
      if (!rs->body) {
        perr_set(err, "NO_MEMORY", "out of memory");
        return -1;
      }
    }
    return 0;
  }
  https_response_clear(rs);
  return -1;
}

static const char *reason_phrase(long status)
{
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 412: return "Precondition Failed";
  case 415: return "Unsupported Media Type";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "";
  }
}

void https_describe_error(const struct https_response *rs, char *out,
                          size_t cap)
{
  char code[64] = "";
  const char *message = NULL;
  json_t *doc = NULL;
  if (rs->body && rs->body_len > 0)
    doc = json_loadb(rs->body, rs->body_len, 0, NULL);
  if (json_is_object(doc)) {
    json_t *ec = json_object_get(doc, "errorCode");
    json_t *msg = json_object_get(doc, "message");
    if (!json_is_string(msg))
      msg = json_object_get(doc, "Message");
    if (json_is_integer(ec))
      snprintf(code, sizeof(code), "%lld", (long long)json_integer_value(ec));
    else if (json_is_string(ec))
      snprintf(code, sizeof(code), "%s", json_string_value(ec));
    if (json_is_string(msg))
      message = json_string_value(msg);
  }
  if (!code[0] && rs->error_code[0])
    snprintf(code, sizeof(code), "%s", rs->error_code);

  const char *phrase = reason_phrase(rs->status);
  int w = snprintf(out, cap, "HTTP %ld%s%s", rs->status, phrase[0] ? " " : "",
                   phrase);
  size_t used = w > 0 && (size_t)w < cap ? (size_t)w : cap - 1;
  if (code[0])
    snprintf(out + used, cap - used, ", errorCode %s%s%s", code,
             message ? ": " : "", message ? message : "");
  else if (message)
    snprintf(out + used, cap - used, ": %s", message);
  json_decref(doc);
}
