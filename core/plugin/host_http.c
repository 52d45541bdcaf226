/* http_request of the host table: one blocking libcurl easy transfer.
 * Ops run on worker threads, so blocking is allowed; the response body
 * lives in a per-thread buffer until the thread's next request. */
#include "plugin/loader.h"
#include "plugin/loader_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "util/log.h"
#include "util/timefmt.h"

#define MAX_REQ_HEADERS 64
#define MAX_HEADER_LEN 8192
#define MAX_METHOD_LEN 16
#define MAX_URL_LEN 8192

struct body_buf {
  uint8_t *data;
  size_t len, cap;
  int overflow; /* the peer sent more than HOST_HTTP_MAX_BODY */
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static pthread_key_t body_key;
static int curl_ready;

static void body_buf_free(void *p)
{
  struct body_buf *b = p;
  if (b)
    free(b->data);
  free(b);
}

static void http_init_once(void)
{
  curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK &&
               pthread_key_create(&body_key, body_buf_free) == 0;
}

static struct body_buf *thread_body(void)
{
  struct body_buf *b = pthread_getspecific(body_key);
  if (!b) {
    b = calloc(1, sizeof(*b));
    if (!b || pthread_setspecific(body_key, b) != 0) {
      free(b);
      return NULL;
    }
  }
  b->len = 0;
  b->overflow = 0;
  return b;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
  struct body_buf *b = ud;
  size_t n = size * nmemb;
  if (n > HOST_HTTP_MAX_BODY - b->len) {
    b->overflow = 1;
    return 0; /* aborts the transfer */
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data)
      return 0;
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, ptr, n);
  b->len += n;
  return n;
}

/* The request's own timeout, shortened to what is left of the call's
 * deadline; 0 when the deadline has already passed. */
static long effective_timeout_ms(const struct provd_call *call,
                                 const struct provd_http_req *req)
{
  int64_t ms = PROVD_HAS(req, struct provd_http_req, timeout_ms) &&
                       req->timeout_ms > 0
                   ? req->timeout_ms
                   : HOST_HTTP_DEFAULT_TIMEOUT_MS;
  if (call && call->deadline_ns) {
    uint64_t now = time_mono_ns();
    if (now >= call->deadline_ns)
      return 0;
    int64_t left = (int64_t)((call->deadline_ns - now) / 1000000u);
    if (left < ms)
      ms = left > 0 ? left : 1;
  }
  return ms > 600000 ? 600000 : (long)ms;
}

/* libcurl puts the method and header lines on the wire as given: a CR or
 * LF in them would let a value start a header or request of its own. */
static int method_valid(const char *m)
{
  size_t len = m ? strnlen(m, MAX_METHOD_LEN + 1) : 0;
  if (len == 0 || len > MAX_METHOD_LEN)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (m[i] < 'A' || m[i] > 'Z')
      return 0;
  return 1;
}

static int header_valid(const char *h)
{
  size_t len = strnlen(h, MAX_HEADER_LEN + 1);
  return len > 0 && len <= MAX_HEADER_LEN && !strpbrk(h, "\r\n");
}

static int request_valid(const struct provd_http_req *req,
                         struct provd_http_resp *resp)
{
  if (!req || !resp ||
      !PROVD_HAS(req, struct provd_http_req, body_len) ||
      !PROVD_HAS(resp, struct provd_http_resp, body_len) ||
      !method_valid(req->method) || !req->url ||
      strnlen(req->url, MAX_URL_LEN + 1) > MAX_URL_LEN ||
      (req->body_len && !req->body) || req->body_len > HOST_HTTP_MAX_BODY)
    return 0;
  for (size_t i = 0; req->headers && req->headers[i]; i++)
    if (i >= MAX_REQ_HEADERS || !header_valid(req->headers[i]))
      return 0;
  return 1;
}

static struct curl_slist *build_headers(const struct provd_http_req *req,
                                        int *ok)
{
  struct curl_slist *list = NULL;
  *ok = 1;
  for (size_t i = 0; req->headers && req->headers[i]; i++) {
    struct curl_slist *next = curl_slist_append(list, req->headers[i]);
    if (!next) {
      *ok = 0;
      break;
    }
    list = next;
  }
  return list;
}

static void setup_easy(CURL *h, const struct provd_http_req *req,
                       struct curl_slist *headers, struct body_buf *b,
                       long timeout_ms)
{
  curl_easy_setopt(h, CURLOPT_URL, req->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
  if (PROVD_HAS(req, struct provd_http_req, ca_file) && req->ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
  if (strcmp(req->method, "HEAD") == 0)
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(req->method, "GET") != 0 || req->body_len)
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
  if (req->body_len || strcmp(req->method, "POST") == 0 ||
      strcmp(req->method, "PUT") == 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                     req->body_len ? (const char *)req->body : "");
  }
}

static const char *instance_id(struct provd_instance *inst)
{
  return inst ? ((struct plugin_instance *)inst)->id : "?";
}

static int perform(struct provd_instance *inst, CURL *h, struct body_buf *b,
                   struct provd_http_resp *resp)
{
  CURLcode cc = curl_easy_perform(h);
  if (cc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = (int)status;
    resp->body = b->len ? b->data : (const uint8_t *)"";
    resp->body_len = b->len;
    return PROVD_OK;
  }
  if (b->overflow)
    log_warn("plugin", "%s: http response body over %d bytes, dropped",
             instance_id(inst), HOST_HTTP_MAX_BODY);
  else
    log_debug("plugin", "%s: http request failed: %s", instance_id(inst),
              curl_easy_strerror(cc));
  if (PROVD_HAS(resp, struct provd_http_resp, not_connected))
    resp->not_connected = cc == CURLE_COULDNT_CONNECT ||
                          cc == CURLE_COULDNT_RESOLVE_HOST;
  return cc == CURLE_OPERATION_TIMEDOUT ? PROVD_E_TIMEOUT
                                        : PROVD_E_UNAVAILABLE;
}

int host_http_request(struct provd_instance *inst, struct provd_call *call,
                      const struct provd_http_req *req,
                      struct provd_http_resp *resp)
{
  if (!request_valid(req, resp))
    return PROVD_E_INVAL;
  resp->status = 0;
  resp->body = NULL;
  resp->body_len = 0;
  if (PROVD_HAS(resp, struct provd_http_resp, not_connected))
    resp->not_connected = 0;
  pthread_once(&http_once, http_init_once);
  if (!curl_ready)
    return PROVD_E_UNAVAILABLE;
  long timeout_ms = effective_timeout_ms(call, req);
  if (timeout_ms == 0)
    return PROVD_E_TIMEOUT;
  struct body_buf *b = thread_body();
  int headers_ok = 0;
  struct curl_slist *headers = build_headers(req, &headers_ok);
  CURL *h = curl_easy_init();
  int rc = PROVD_E_NOMEM;
  if (b && h && headers_ok) {
    setup_easy(h, req, headers, b, timeout_ms);
    rc = perform(inst, h, b, resp);
  }
  curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  return rc;
}
