/* Minimal HTTP/1.1 response parser for the load generator: status line,
 * Content-Length, Connection.  Chunked bodies are not supported (provd and
 * the baseline server always send Content-Length). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

#define MAX_HEADER_LINE 8192

static bool header_is(const char *line, size_t len, const char *name)
{
  size_t n = strlen(name);
  return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* The header value without leading/trailing blanks, copied into out. */
static void header_value(const char *line, size_t len, char *out,
                         size_t out_cap)
{
  const char *v = memchr(line, ':', len);
  const char *end = line + len;
  size_t n;
  v = v ? v + 1 : end;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  n = (size_t)(end - v);
  if (n >= out_cap)
    n = out_cap - 1;
  memcpy(out, v, n);
  out[n] = '\0';
}

static int parse_status_line(const char *line, size_t len, int *status)
{
  if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
    return -1;
  if (line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
      line[11] < '0' || line[11] > '9')
    return -1;
  if (len > 12 && line[12] != ' ')
    return -1;
  *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  return 0;
}

/* Walks the header lines between the status line and the blank line. */
static int parse_headers(const char *p, const char *end, long *content_len,
                         struct lg_resp *out)
{
  char value[64];
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    size_t len;
    if (!eol || eol + 1 >= end || eol[1] != '\n')
      return -1;
    len = (size_t)(eol - p);
    if (len > MAX_HEADER_LINE)
      return -1;
    if (header_is(p, len, "Content-Length")) {
      char *stop;
      header_value(p, len, value, sizeof value);
      *content_len = strtol(value, &stop, 10);
      if (stop == value || *stop != '\0' || *content_len < 0 ||
          *content_len > LG_IN_CAP)
        return -1;
    } else if (header_is(p, len, "Transfer-Encoding")) {
      return -1; /* chunked: unsupported, see file comment */
    } else if (header_is(p, len, "Retry-After")) {
      header_value(p, len, value, sizeof value);
      out->retry_after = value[0] != '\0';
    } else if (header_is(p, len, "Connection")) {
      header_value(p, len, value, sizeof value);
      out->conn_close = strcasecmp(value, "close") == 0;
    }
    p = eol + 2;
  }
  return 0;
}

int lg_http_parse(const char *buf, size_t len, bool at_eof,
                  struct lg_resp *out)
{
  const char *head_end = NULL;
  const char *line_end;
  long content_len = -1;
  size_t head_len;

  memset(out, 0, sizeof *out);
  if (!buf)
    return -1;
  if (len >= 4) {
    /* memmem is a GNU extension; _GNU_SOURCE is set project-wide. */
    head_end = memmem(buf, len, "\r\n\r\n", 4);
  }
  if (!head_end)
    return len > LG_IN_CAP ? -1 : 0;
  head_len = (size_t)(head_end - buf) + 4;
  line_end = memmem(buf, head_len, "\r\n", 2);
  if (parse_status_line(buf, (size_t)(line_end - buf), &out->status) != 0)
    return -1;
  if (parse_headers(line_end + 2, head_end + 2, &content_len, out) != 0)
    return -1;
  out->body_off = head_len;
  if (content_len < 0 && (out->status == 204 || out->status == 304 ||
                          out->status < 200))
    content_len = 0;
  if (content_len < 0) {
    out->until_close = true;
    out->body_len = len - head_len;
    return at_eof ? 1 : 0;
  }
  out->body_len = (size_t)content_len;
  if (len < head_len + (size_t)content_len)
    return 0;
  return len == head_len + (size_t)content_len ? 1 : -1; /* no pipelining */
}
