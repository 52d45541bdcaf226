/* Serves the embedded console files (core/console/www) with the headers
 * that keep them safe to open: a CSP that allows only these files (no
 * inline script, no framing), nosniff, no referrer. */
#include "console/console.h"

#include <string.h>
#include <strings.h>

#include "console/assets.h"

#define CONSOLE_CSP                                                         \
  "default-src 'none'; script-src 'self'; style-src 'self'; "               \
  "img-src 'self' data:; connect-src 'self'; form-action 'none'; "          \
  "base-uri 'none'; frame-ancestors 'none'"

static const struct http_header SECURITY_HEADERS[] = {
    {"Content-Security-Policy", CONSOLE_CSP},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Frame-Options", "DENY"},
    {"Cache-Control", "no-cache"},
};
#define N_SECURITY_HEADERS \
  (sizeof(SECURITY_HEADERS) / sizeof(SECURITY_HEADERS[0]))

bool console_owns_path(const char *path)
{
  return strcmp(path, "/console") == 0 ||
         strncmp(path, CONSOLE_PATH, strlen(CONSOLE_PATH)) == 0;
}

static const char *content_type_of(const char *name)
{
  const char *dot = strrchr(name, '.');
  if (dot && strcmp(dot, ".html") == 0)
    return "text/html; charset=utf-8";
  if (dot && strcmp(dot, ".js") == 0)
    return "text/javascript; charset=utf-8";
  if (dot && strcmp(dot, ".css") == 0)
    return "text/css; charset=utf-8";
  if (dot && strcmp(dot, ".svg") == 0)
    return "image/svg+xml";
  return "application/octet-stream";
}

static const struct console_asset *find_asset(const char *name)
{
  if (name[0] == '\0')
    name = "index.html";
  for (const struct console_asset *a = console_assets; a->name; a++) {
    if (strcmp(a->name, name) == 0)
      return a;
  }
  return NULL;
}

/* A short text answer with the security headers and, when not NULL,
 * one more header (Allow, Location). */
static void respond_text(struct http_exchange *ex, int status,
                         const char *text, const struct http_header *extra)
{
  struct http_header h[N_SECURITY_HEADERS + 1];
  memcpy(h, SECURITY_HEADERS, sizeof(SECURITY_HEADERS));
  if (extra)
    h[N_SECURITY_HEADERS] = *extra;
  http_respond(ex, status, "text/plain; charset=utf-8", text, strlen(text),
               h, N_SECURITY_HEADERS + (extra ? 1 : 0));
}

void console_handle(struct http_exchange *ex)
{
  const struct http_request *req = http_exchange_request(ex);
  if (strcmp(req->method, "GET") != 0) {
    struct http_header allow = {"Allow", "GET"};
    respond_text(ex, 405, "Method not allowed\n", &allow);
    return;
  }
  if (strcmp(req->path, "/console") == 0) {
    struct http_header to = {"Location", CONSOLE_PATH};
    respond_text(ex, 308, "See /console/\n", &to);
    return;
  }
  /* Only exact names from the table: no decoding, no directories. */
  const struct console_asset *a = find_asset(req->path + strlen(CONSOLE_PATH));
  if (!a) {
    respond_text(ex, 404, "Not found\n", NULL);
    return;
  }
  http_respond(ex, 200, content_type_of(a->name), (const char *)a->data,
               a->len, SECURITY_HEADERS, N_SECURITY_HEADERS);
}
