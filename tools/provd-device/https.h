/* A small blocking HTTPS client on libcurl, shared by provd-device and
 * provctl.  One client = one curl handle, so consecutive requests reuse
 * the TLS connection (as the DPS SDKs do for register + polls). */
#ifndef TOOLS_HTTPS_H
#define TOOLS_HTTPS_H

#include <stddef.h>

#include "util/err.h"

#define HTTPS_MAX_BODY (8u * 1024u * 1024u) /* larger answers are refused */
#define HTTPS_MAX_URL 4096

struct https_client;

/* base_url: "https://host:port" (a trailing "/" is dropped).  ca_file:
 * PEM bundle to trust, NULL for the system store.  user_agent is sent as
 * User-Agent.  timeout_s bounds each request.  Caller frees with
 * https_client_free.  NULL with err set on failure. */
struct https_client *https_client_new(const char *base_url,
                                      const char *ca_file,
                                      const char *user_agent,
                                      long timeout_s, struct provd_err *err);
void https_client_free(struct https_client *c);

/* TLS client certificate for every later request: cert_file is PEM, the
 * leaf first and any intermediates after it (all are sent), key_file its
 * PEM private key.  0, or -1 with err set (NO_MEMORY). */
int https_client_set_identity(struct https_client *c, const char *cert_file,
                              const char *key_file, struct provd_err *err);

struct https_request {
  const char *method;         /* "GET", "PUT", "POST", "DELETE" */
  const char *path;           /* starts with "/", query included */
  const char *authorization;  /* Authorization value; NULL: none */
  const char *body;           /* JSON text; NULL: no body */
  const char *const *headers; /* extra "Name: value" lines; may be NULL */
  size_t n_headers;
  long timeout_s;             /* 0: the client's default */
  size_t max_body;            /* 0: HTTPS_MAX_BODY */
};

struct https_response {
  long status;
  char *body;                 /* NUL-terminated, never NULL after success */
  size_t body_len;
  char content_type[128];
  char etag[256];
  char continuation[2048];    /* x-ms-continuation; "" when absent */
  char error_code[64];        /* x-ms-error-code; "" when absent */
  int retry_after_s;          /* Retry-After in seconds; -1 when absent */
};

/* Sends one request and reads the whole answer.  Any HTTP status counts
 * as success here (the caller judges it); -1 with err set (code NETWORK,
 * TLS or TOO_LARGE) only when no complete answer arrived.  rs is
 * (re)initialised; release it with https_response_clear. */
int https_do(struct https_client *c, const struct https_request *rq,
             struct https_response *rs, struct provd_err *err);
void https_response_clear(struct https_response *rs);

/* 1 when the answer is 2xx. */
int https_ok(const struct https_response *rs);

/* Describes a non-2xx answer in one line: "HTTP 404, errorCode 404201:
 * Enrollment not found", using the DPS error body or x-ms-error-code when
 * present. */
void https_describe_error(const struct https_response *rs, char *out,
                          size_t cap);

#endif
