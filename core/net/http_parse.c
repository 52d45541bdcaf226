/* HTTP/1.1 request-head parser (RFC 9110 / 9112 subset), strict on
 * purpose: anything ambiguous (bare LF, obs-fold, whitespace before the
 * colon, conflicting Content-Length, Transfer-Encoding) is refused, so
 * that no proxy in front of us can read a different message boundary
 * than we do. */
#include "net/http_parse.h"

#include <string.h>

/* Internal step results: 1 done, 0 need more, < 0 minus a status. */
#define STEP_DONE 1
#define STEP_MORE 0

struct cursor {
  const unsigned char *b;
  size_t n;   /* bytes we may examine */
  size_t pos;
};

static bool is_tchar(unsigned char ch)
{
  if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
      (ch >= 'A' && ch <= 'Z'))
    return true;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Field-value bytes: HTAB, SP, VCHAR, obs-text.  No CR, LF, NUL, DEL. */
static bool is_value_char(unsigned char ch)
{
  return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static char lower(unsigned char ch)
{
  return (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
}

static bool span_ieq(const unsigned char *b, struct http_span s,
                     const char *lit)
{
  size_t n = strlen(lit);
  if (s.len != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (lower(b[s.off + i]) != lit[i])
      return false;
  return true;
}

/* A token up to (and consuming) `stop`. */
static int take_token(struct cursor *c, unsigned char stop, size_t max,
                      struct http_span *out)
{
  size_t start = c->pos;
  while (c->pos < c->n && c->b[c->pos] != stop) {
    if (!is_tchar(c->b[c->pos]) || c->pos - start >= max)
      return -400;
    c->pos++;
  }
  if (c->pos == c->n)
    return STEP_MORE;
  if (c->pos == start)
    return -400;
  out->off = start;
  out->len = c->pos - start;
  c->pos++;
  return STEP_DONE;
}

/* CR LF at the cursor, consumed. */
static int take_crlf(struct cursor *c)
{
  if (c->pos >= c->n)
    return STEP_MORE;
  if (c->b[c->pos] != '\r')
    return -400;
  if (c->pos + 1 >= c->n)
    return STEP_MORE;
  if (c->b[c->pos + 1] != '\n')
    return -400;
  c->pos += 2;
  return STEP_DONE;
}

static int take_target(struct cursor *c, struct http_head *h)
{
  size_t start = c->pos;
  while (c->pos < c->n && c->b[c->pos] != ' ') {
    unsigned char ch = c->b[c->pos];
    if (ch < 0x21 || ch > 0x7e)
      return -400;
    c->pos++;
  }
  if (c->pos == c->n)
    return STEP_MORE;
  size_t len = c->pos - start;
  if (len == 0)
    return -400;
  /* origin-form, or "*" (OPTIONS); absolute-form is for proxies. */
  if (c->b[start] != '/' && !(len == 1 && c->b[start] == '*'))
    return -400;
  h->target = (struct http_span){start, len};
  const unsigned char *q = memchr(c->b + start, '?', len);
  size_t path_len = q ? (size_t)(q - (c->b + start)) : len;
  h->path = (struct http_span){start, path_len};
  h->has_query = q != NULL;
  h->query = q ? (struct http_span){start + path_len + 1, len - path_len - 1}
               : (struct http_span){start + len, 0};
  c->pos++;
  return STEP_DONE;
}

/* "HTTP/" DIGIT "." DIGIT CRLF */
static int take_version(struct cursor *c, struct http_head *h)
{
  static const char pattern[] = "HTTP/d.d";
  size_t plen = sizeof pattern - 1;
  for (size_t i = 0; i < plen; i++) {
    if (c->pos + i >= c->n)
      return STEP_MORE;
    unsigned char ch = c->b[c->pos + i];
    bool ok = pattern[i] == 'd' ? (ch >= '0' && ch <= '9')
                                : ch == (unsigned char)pattern[i];
    if (!ok)
      return -400;
  }
  int major = c->b[c->pos + 5] - '0';
  int minor = c->b[c->pos + 7] - '0';
  c->pos += plen;
  int r = take_crlf(c);
  if (r != STEP_DONE)
    return r;
  if (major != 1 || minor > 1)
    return -505;
  h->minor = minor;
  return STEP_DONE;
}

static int take_request_line(struct cursor *c, struct http_head *h)
{
  /* RFC 9112 2.2: ignore empty lines before the request line. */
  while (c->pos + 1 < c->n && c->b[c->pos] == '\r' &&
         c->b[c->pos + 1] == '\n')
    c->pos += 2;
  int r = take_token(c, ' ', HTTP_MAX_METHOD, &h->method);
  if (r != STEP_DONE)
    return r;
  r = take_target(c, h);
  if (r != STEP_DONE)
    return r;
  return take_version(c, h);
}

/* One "name: value CRLF" line. */
static int take_field(struct cursor *c, size_t max_name,
                      struct http_head_field *f)
{
  int r = take_token(c, ':', max_name, &f->name);
  if (r != STEP_DONE)
    return r;
  while (c->pos < c->n && (c->b[c->pos] == ' ' || c->b[c->pos] == '\t'))
    c->pos++;
  size_t start = c->pos, end = c->pos;
  while (c->pos < c->n && c->b[c->pos] != '\r') {
    unsigned char ch = c->b[c->pos];
    if (!is_value_char(ch))
      return -400;
    c->pos++;
    if (ch != ' ' && ch != '\t')
      end = c->pos;
  }
  r = take_crlf(c);
  if (r != STEP_DONE)
    return r;
  f->value = (struct http_span){start, end - start};
  return STEP_DONE;
}

static int take_fields(struct cursor *c, struct http_head *h, size_t max)
{
  for (;;) {
    if (c->pos >= c->n)
      return STEP_MORE;
    if (c->b[c->pos] == '\r')
      return take_crlf(c); /* the empty line ends the head */
    if (c->b[c->pos] == ' ' || c->b[c->pos] == '\t')
      return -400; /* obs-fold (or whitespace before the first field) */
    struct http_head_field f;
    int r = take_field(c, max, &f);
    if (r != STEP_DONE)
      return r;
    if (h->n_headers == HTTP_MAX_HEADERS)
      return -431;
    h->headers[h->n_headers++] = f;
  }
}

/* 1*DIGIT; saturates at UINT64_MAX (surely too large anyway). */
static int parse_length(const unsigned char *b, struct http_span s,
                        uint64_t *out)
{
  if (s.len == 0)
    return -400;
  uint64_t v = 0;
  for (size_t i = 0; i < s.len; i++) {
    unsigned char ch = b[s.off + i];
    if (ch < '0' || ch > '9')
      return -400;
    unsigned d = ch - '0';
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  *out = v;
  return STEP_DONE;
}

/* Connection: comma-separated tokens, any case. */
static void scan_connection(const unsigned char *b, struct http_span s,
                            bool *close, bool *keep_alive)
{
  size_t i = 0;
  while (i < s.len) {
    while (i < s.len && (b[s.off + i] == ' ' || b[s.off + i] == '\t' ||
                         b[s.off + i] == ','))
      i++;
    size_t start = i;
    while (i < s.len && b[s.off + i] != ',' && b[s.off + i] != ' ' &&
           b[s.off + i] != '\t')
      i++;
    struct http_span tok = {s.off + start, i - start};
    if (span_ieq(b, tok, "close"))
      *close = true;
    else if (span_ieq(b, tok, "keep-alive"))
      *keep_alive = true;
  }
}

struct field_facts {
  bool has_length, has_te, conn_close, conn_keep_alive, bad_expect;
  int n_host;
};

static int collect_facts(const unsigned char *b, struct http_head *h,
                         struct field_facts *ff)
{
  for (size_t i = 0; i < h->n_headers; i++) {
    struct http_span name = h->headers[i].name;
    struct http_span value = h->headers[i].value;
    if (span_ieq(b, name, "content-length")) {
      uint64_t v;
      int r = parse_length(b, value, &v);
      if (r != STEP_DONE)
        return r;
      if (ff->has_length && v != h->content_length)
        return -400; /* conflicting lengths: a smuggling attempt */
      ff->has_length = true;
      h->content_length = v;
    } else if (span_ieq(b, name, "transfer-encoding")) {
      ff->has_te = true;
    } else if (span_ieq(b, name, "host")) {
      ff->n_host++;
    } else if (span_ieq(b, name, "connection")) {
      scan_connection(b, value, &ff->conn_close, &ff->conn_keep_alive);
    } else if (span_ieq(b, name, "expect") && h->minor == 1) {
      if (span_ieq(b, value, "100-continue"))
        h->expect_continue = true;
      else
        ff->bad_expect = true;
    }
  }
  return STEP_DONE;
}

static int check_semantics(const unsigned char *b, struct http_head *h,
                           const struct http_parse_limits *lim)
{
  struct field_facts ff = {0};
  int r = collect_facts(b, h, &ff);
  if (r != STEP_DONE)
    return r;
  if (ff.n_host > 1 || (h->minor == 1 && ff.n_host == 0))
    return -400;
  if (ff.has_te)
    return -501;
  if (h->content_length > lim->max_body_bytes)
    return -413;
  if (ff.bad_expect)
    return -417;
  h->keep_alive = h->minor == 1 ? !ff.conn_close
                                : (ff.conn_keep_alive && !ff.conn_close);
  if (h->content_length == 0)
    h->expect_continue = false; /* nothing to wait for */
  return STEP_DONE;
}

int http_parse_head(const char *buf, size_t len,
                    const struct http_parse_limits *lim,
                    struct http_head *out)
{
  out->n_headers = 0;
  out->content_length = 0;
  out->keep_alive = false;
  out->expect_continue = false;
  out->head_len = 0;
  struct cursor c = {(const unsigned char *)buf,
                     len < lim->max_header_bytes ? len
                                                 : lim->max_header_bytes,
                     0};
  int r = take_request_line(&c, out);
  if (r == STEP_DONE)
    r = take_fields(&c, out, lim->max_header_bytes);
  if (r == STEP_MORE)
    return len > lim->max_header_bytes ? -431 : HTTP_PARSE_NEED_MORE;
  if (r < 0)
    return r;
  r = check_semantics(c.b, out, lim);
  if (r < 0)
    return r;
  out->head_len = c.pos;
  return (int)c.pos;
}

const char *http_reason_phrase(int status)
{
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "";
  }
}
