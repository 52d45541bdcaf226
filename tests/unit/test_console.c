/* The console's file server (core/console) behind a live plain-HTTP
 * server on 127.0.0.1: every embedded file with its type, only exact
 * names, and the security headers on every answer, errors included. */
#include <check.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "console/assets.h"
#include "console/console.h"
#include "net/http.h"

static struct http_server *g_srv;

static void handler(struct http_exchange *ex, void *ud)
{
  (void)ud;
  const struct http_request *req = http_exchange_request(ex);
  if (console_owns_path(req->path))
    console_handle(ex);
  else
    http_respond(ex, 418, "text/plain", "not console", 11, NULL, 0);
}

static void setup(void)
{
  struct http_server_opts o = {0};
  o.host = "127.0.0.1";
  o.workers = 1;
  o.handler = handler;
  struct provd_err err = {0};
  ck_assert_msg(http_server_start(&o, &g_srv, &err) == 0, "%s", err.msg);
}

static void teardown(void)
{
  http_server_stop(g_srv, 1000);
  g_srv = NULL;
}

/* One request on a new connection; the whole answer into out. */
static void request(const char *method, const char *path, char *out,
                    size_t cap)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)http_server_port(g_srv));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  char req[512];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: 0\r\nConnection: close\r\n\r\n",
                   method, path);
  ck_assert_int_eq(write(fd, req, (size_t)n), n);
  size_t len = 0;
  ssize_t r;
  while (len + 1 < cap && (r = read(fd, out + len, cap - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(fd);
}

static int status_of(const char *answer)
{
  int status = 0;
  sscanf(answer, "HTTP/1.1 %d", &status);
  return status;
}

static void assert_security_headers(const char *answer)
{
  ck_assert_msg(strstr(answer, "\r\nContent-Security-Policy: default-src "
                       "'none'; script-src 'self';"), "%s", answer);
  ck_assert(strstr(answer, "frame-ancestors 'none'"));
  ck_assert(!strstr(answer, "unsafe-inline"));
  ck_assert(strstr(answer, "\r\nX-Content-Type-Options: nosniff\r\n"));
  ck_assert(strstr(answer, "\r\nReferrer-Policy: no-referrer\r\n"));
}

static char g_answer[1 << 20];

START_TEST(t_every_asset_with_its_type)
{
  size_t n = 0;
  for (const struct console_asset *a = console_assets; a->name; a++, n++) {
    char path[128];
    snprintf(path, sizeof path, "/console/%s", a->name);
    request("GET", path, g_answer, sizeof g_answer);
    ck_assert_int_eq(status_of(g_answer), 200);
    assert_security_headers(g_answer);
    const char *dot = strrchr(a->name, '.');
    const char *want = strcmp(dot, ".js") == 0    ? "text/javascript"
                       : strcmp(dot, ".css") == 0 ? "text/css"
                                                  : "text/html";
    char header[64];
    snprintf(header, sizeof header, "Content-Type: %s", want);
    ck_assert_msg(strstr(g_answer, header), "%s: %s", a->name, header);
    const char *body = strstr(g_answer, "\r\n\r\n");
    ck_assert(body && strlen(body + 4) == a->len);
    ck_assert(memcmp(body + 4, a->data, a->len) == 0);
  }
  ck_assert_uint_ge(n, 3); /* index.html, app.js, app.css */
}
END_TEST

START_TEST(t_root_is_the_page)
{
  request("GET", "/console/", g_answer, sizeof g_answer);
  ck_assert_int_eq(status_of(g_answer), 200);
  ck_assert(strstr(g_answer, "<!doctype html>"));
  ck_assert(strstr(g_answer, "name=\"connectionString\""));
  request("GET", "/console", g_answer, sizeof g_answer);
  ck_assert_int_eq(status_of(g_answer), 308);
  ck_assert(strstr(g_answer, "\r\nLocation: /console/\r\n"));
  assert_security_headers(g_answer);
}
END_TEST

START_TEST(t_only_exact_names)
{
  static const char *const misses[] = {
      "/console/nope.js", "/console/../console/app.js", "/console/app.js/",
      "/console/%61pp.js", "/console/APP.JS", "/console//app.js",
      "/console/.", "/console/app.js%00"};
  for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
    request("GET", misses[i], g_answer, sizeof g_answer);
    ck_assert_msg(status_of(g_answer) == 404, "%s: %d", misses[i],
                  status_of(g_answer));
    assert_security_headers(g_answer);
  }
  ck_assert(!console_owns_path("/consoles/app.js"));
  ck_assert(!console_owns_path("/enrollments"));
}
END_TEST

START_TEST(t_other_methods_refused)
{
  static const char *const methods[] = {"POST", "PUT", "DELETE", "HEAD"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    request(methods[i], "/console/app.js", g_answer, sizeof g_answer);
    ck_assert_msg(status_of(g_answer) == 405, "%s", methods[i]);
    ck_assert(strstr(g_answer, "\r\nAllow: GET\r\n"));
    assert_security_headers(g_answer);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("console");
  TCase *tc = tcase_create("files");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_every_asset_with_its_type);
  tcase_add_test(tc, t_root_is_the_page);
  tcase_add_test(tc, t_only_exact_names);
  tcase_add_test(tc, t_other_methods_refused);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
