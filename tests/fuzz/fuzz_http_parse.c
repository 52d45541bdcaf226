/* libFuzzer target over the HTTP request-head parser and the one path
 * splitter the APIs route with (core/api/path.c).  Besides "no crash,
 * no out-of-bounds read" (ASan/UBSan) it checks the parser's contract:
 * results in range, spans inside the head, and that every complete head
 * is "need more" one byte earlier (no decision on partial input); and the
 * splitter's: segments in bounds, joined with '/' they give the path back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/path.h"
#include "net/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok)
{
  if (!ok)
    abort();
}

static int span_inside(struct http_span s, size_t end)
{
  return s.off <= end && s.len <= end - s.off;
}

static void check_done(const char *buf, const struct http_head *h, int r,
                       const struct http_parse_limits *lim)
{
  size_t end = (size_t)r;
  require(h->head_len == end && end <= lim->max_header_bytes);
  require(h->n_headers <= HTTP_MAX_HEADERS);
  require(h->method.len > 0 && h->method.len <= HTTP_MAX_METHOD);
  require(span_inside(h->method, end) && span_inside(h->target, end));
  require(span_inside(h->path, end) && span_inside(h->query, end));
  require(h->path.off == h->target.off && h->path.len <= h->target.len);
  require(buf[h->target.off] == '/' || buf[h->target.off] == '*');
  for (size_t i = 0; i < h->n_headers; i++) {
    require(span_inside(h->headers[i].name, end));
    require(span_inside(h->headers[i].value, end));
    require(h->headers[i].name.len > 0);
    require(memchr(buf + h->headers[i].value.off, '\n',
                   h->headers[i].value.len) == NULL);
    require(memchr(buf + h->headers[i].value.off, '\r',
                   h->headers[i].value.len) == NULL);
  }
  require(h->content_length <= lim->max_body_bytes);
  require(h->minor == 0 || h->minor == 1);
  require(memcmp(buf + end - 4, "\r\n\r\n", 4) == 0);
}

static void check_path(const char *buf, const struct http_head *h)
{
  char *path = malloc(h->path.len + 1);
  require(path != NULL);
  memcpy(path, buf + h->path.off, h->path.len);
  path[h->path.len] = '\0';
  static struct path_parts parts;
  enum path_split_status st = path_split(path, &parts);
  require(parts.n <= PATH_SEGMENTS_MAX);
  size_t at = 0;
  for (size_t i = 0; i < parts.n; i++) {
    size_t n = strlen(parts.seg[i]);
    require(n < PATH_SEGMENT_MAX && path[at] == '/');
    require(memcmp(path + at + 1, parts.seg[i], n) == 0);
    at += 1 + n;
  }
  if (st == PATH_OK)
    require(parts.n >= 1 && path[at] == '\0');
  else
    require(st == PATH_NOT_ABSOLUTE || st == PATH_TOO_MANY_SEGMENTS ||
            st == PATH_SEGMENT_TOO_LONG);
  free(path);
}

static void run(const char *buf, size_t size,
                const struct http_parse_limits *lim)
{
  struct http_head h;
  int r = http_parse_head(buf, size, lim, &h);
  if (r > 0) {
    require((size_t)r <= size);
    check_done(buf, &h, r, lim);
    check_path(buf, &h);
    struct http_head shorter;
    require(http_parse_head(buf, (size_t)r - 1, lim, &shorter) ==
            HTTP_PARSE_NEED_MORE);
  } else if (r == HTTP_PARSE_NEED_MORE) {
    require(size <= lim->max_header_bytes);
  } else {
    require(r == -400 || r == -413 || r == -417 || r == -431 || r == -501 ||
            r == -505);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* An exact-size copy, so reading one byte too far is caught. */
  char *buf = malloc(size ? size : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  static const struct http_parse_limits roomy = {16 * 1024, 96 * 1024};
  static const struct http_parse_limits tight = {64, 8};
  run(buf, size, &roomy);
  run(buf, size, &tight);
  free(buf);
  return 0;
}
