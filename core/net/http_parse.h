/* HTTP/1.1 request-head parser: a pure function over a byte buffer (no
 * allocation, no I/O), shared by the server, its unit tests and the fuzz
 * target.  Why our own: see docs/internals/http.md. */
#ifndef CORE_NET_HTTP_PARSE_H
#define CORE_NET_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_METHOD 32

/* HTTP_PARSE_NEED_MORE: the head is not complete yet; call again with
 * more bytes (the same prefix plus what arrived). */
#define HTTP_PARSE_NEED_MORE 0

/* A byte range of the parsed buffer. */
struct http_span {
  size_t off;
  size_t len;
};

struct http_head_field {
  struct http_span name;  /* token, case as sent */
  struct http_span value; /* leading/trailing whitespace trimmed */
};

struct http_head {
  struct http_span method;
  struct http_span target; /* path + "?" + query */
  struct http_span path;   /* target up to "?" */
  struct http_span query;  /* after "?"; len 0 when absent */
  bool has_query;
  int minor;               /* 0: HTTP/1.0, 1: HTTP/1.1 */
  size_t n_headers;
  struct http_head_field headers[HTTP_MAX_HEADERS];
  uint64_t content_length; /* 0 without a Content-Length header */
  bool keep_alive;         /* after version default + Connection */
  bool expect_continue;    /* "Expect: 100-continue" on HTTP/1.1 */
  size_t head_len;         /* bytes of the head incl. the empty line */
};

struct http_parse_limits {
  size_t max_header_bytes; /* request line + headers + CRLFs */
  size_t max_body_bytes;   /* larger Content-Length -> 413 */
};

/* Parses the request head at the start of buf[0..len).
 * Returns:
 *   > 0  the head is complete; the value is head_len (bytes consumed by
 *        the head; the body of out->content_length bytes follows);
 *   0    HTTP_PARSE_NEED_MORE;
 *   < 0  the request is unacceptable; the value is minus the HTTP status
 *        to answer: -400 malformed, -413 body too large, -417 unknown
 *        Expect, -431 head too large / too many headers, -501
 *        Transfer-Encoding, -505 HTTP version other than 1.0 / 1.1.
 * Bytes past max_header_bytes are never examined.  out is filled only
 * meaningfully on success. */
int http_parse_head(const char *buf, size_t len,
                    const struct http_parse_limits *lim,
                    struct http_head *out);

/* The reason phrase of a status code ("OK", "Not Found"); "" if unknown. */
const char *http_reason_phrase(int status);

#endif
