/* provd-device portal: the page on the device where its owner types the
 * credentials from the enrollment email (ID scope, registration id, key,
 * or a certificate) and provisions it.  A small blocking HTTP/1.1 server:
 * a thread per connection reads its request (browsers open idle
 * connections ahead of use, which must not stall the others), then one
 * request at a time is answered (the portal has one user and one PIN).
 * Loopback by default; bound elsewhere, a one-time PIN printed on stdout
 * guards it.
 * The registration itself is libprovd-device's provd_device_register. */
#include "portal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "provd_device.h"
#include "util/url.h"
#include "util/secret.h"

#define PORTAL_HEAD_MAX 8192
#define PORTAL_BODY_MAX (64 * 1024) /* a certificate chain and its key */
#define PORTAL_FIELD_MAX (32 * 1024)
#define PORTAL_IO_TIMEOUT_S 10
#define PORTAL_PIN_DIGITS 8
#define PORTAL_PIN_TRIES 5 /* wrong PINs before a new one is drawn */
#define PORTAL_MAX_CONNECTIONS 16
#define PORTAL_DEFAULT_CREDENTIALS "provd-device-credentials.json"

#define PORTAL_CSP                                                     \
  "default-src 'none'; script-src 'self'; style-src 'self'; "          \
  "img-src data:; form-action 'self'; base-uri 'none'; "                \
  "frame-ancestors 'none'"

struct portal {
  const char *listen;      /* HOST:PORT as given */
  const char *credentials; /* file written after a success */
  const char *url;         /* the provisioning service */
  const char *ca_file;
  int timeout_s;
  int fd;
  char host_port[300];     /* what the browser's Host header must say */
  int loopback;
  pthread_mutex_t lock;    /* one request answered at a time; guards
                              the PIN and the connection count */
  int connections;
  char pin[PORTAL_PIN_DIGITS + 1]; /* "" on loopback */
  int pin_failures;
};

struct request {
  char method[8];
  char path[256];
  char host[300];
  char origin[300];
  char fetch_site[32]; /* Sec-Fetch-Site */
  char content_type[128];
  char *body; /* owned */
  size_t body_len;
};

/* ---- the page ---- */

static const char PAGE_HEAD[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>Device portal</title><link rel=\"stylesheet\" href=\"portal.css\">"
    "<link rel=\"icon\" href=\"data:,\">"
    "<script src=\"portal.js\" defer></script></head><body><main>"
    "<h1>Provision this device</h1>";

static const char PAGE_FORM[] =
    "<p>Type what the enrollment email says, then Provision.</p>"
    "<form method=\"post\" action=\"provision\">"
    "<label for=\"idScope\">ID scope</label>"
    "<input id=\"idScope\" name=\"idScope\" required autocomplete=\"off\" "
    "value=\"%s\">"
    "<label for=\"registrationId\">Registration id</label>"
    "<input id=\"registrationId\" name=\"registrationId\" required "
    "autocomplete=\"off\" value=\"%s\">"
    "<label for=\"symmetricKey\">Primary key (symmetric key devices)</label>"
    "<input id=\"symmetricKey\" name=\"symmetricKey\" type=\"password\" "
    "autocomplete=\"off\">"
    "<fieldset><legend>Or an X.509 certificate</legend>"
    "<label for=\"certificateFile\">Certificate file (PEM)</label>"
    "<input id=\"certificateFile\" type=\"file\" data-into=\"certificate\" "
    "accept=\".pem,.crt\">"
    "<label for=\"certificate\">Certificate (PEM)</label>"
    "<textarea id=\"certificate\" name=\"certificate\"></textarea>"
    "<label for=\"privateKeyFile\">Private key file (PEM)</label>"
    "<input id=\"privateKeyFile\" type=\"file\" data-into=\"privateKey\" "
    "accept=\".pem,.key\">"
    "<label for=\"privateKey\">Private key (PEM)</label>"
    "<textarea id=\"privateKey\" name=\"privateKey\"></textarea>"
    "</fieldset>"
    "<label for=\"serviceUrl\">Provisioning service</label>"
    "<input id=\"serviceUrl\" name=\"serviceUrl\" value=\"%s\">"
    "%s"
    "<button type=\"submit\">Provision</button></form>";

static const char PAGE_PIN_FIELD[] =
    "<label for=\"pin\">PIN (printed where the portal was started)</label>"
    "<input id=\"pin\" name=\"pin\" required inputmode=\"numeric\" "
    "autocomplete=\"off\">";

static const char PAGE_TAIL[] = "</main></body></html>";

static const char PORTAL_CSS[] =
    "body{font:16px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24}"
    "main{max-width:36rem;margin:0 auto;padding:1rem}"
    "form{display:grid;gap:.35rem}"
    "fieldset{display:grid;gap:.35rem;border:1px solid #d0d7de;"
    "border-radius:6px}"
    "input,textarea,button{font:inherit;padding:.4rem;border:1px solid "
    "#d0d7de;border-radius:4px;max-width:100%}"
    "textarea{min-height:4rem;font-family:monospace;font-size:.85em}"
    "button{background:#0b5cad;color:#fff;border-color:#0b5cad;"
    "margin-top:.5rem}"
    ":focus{outline:3px solid #f0b400}"
    ".ok{border:1px solid #1a7f37;padding:.6rem;border-radius:6px}"
    ".error{border:1px solid #b42318;color:#b42318;padding:.6rem;"
    "border-radius:6px}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem}"
    "dd{margin:0;word-break:break-all}";

/* Copies a chosen file's text into its textarea (the form posts text). */
static const char PORTAL_JS[] =
    "'use strict';\n"
    "for (const input of document.querySelectorAll('input[data-into]')) {\n"
    "  input.addEventListener('change', async () => {\n"
    "    const f = input.files[0];\n"
    "    if (f) document.getElementById(input.dataset.into).value = "
    "await f.text();\n"
    "  });\n"
    "}\n";

/* ---- small text helpers ---- */

struct text {
  char *s;
  size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
  if (t->len + n + 1 > t->cap) {
    size_t cap = (t->len + n + 1) * 2;
    char *grown = realloc(t->s, cap);
    if (!grown)
      return;
    t->s = grown;
    t->cap = cap;
  }
  memcpy(t->s + t->len, s, n);
  t->len += n;
  t->s[t->len] = '\0';
}

/* A string literal, its length known at compile time. */
#define text_lit(t, lit) text_add((t), (lit), sizeof(lit) - 1)

static void text_printf(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *buf = NULL;
  int n = vasprintf(&buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    text_add(t, buf, (size_t)n);
  free(buf);
}

static void text_html(struct text *t, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '<': text_lit(t, "&lt;"); break;
    case '>': text_lit(t, "&gt;"); break;
    case '&': text_lit(t, "&amp;"); break;
    case '"': text_lit(t, "&quot;"); break;
    case '\'': text_lit(t, "&#39;"); break;
    default: text_add(t, s, 1);
    }
  }
}

/* ---- HTTP ---- */

static int write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void respond(int fd, int status, const char *type, const char *body,
                    size_t len)
{
  const char *reason = status == 200 ? "OK" : status == 403 ? "Forbidden"
                       : status == 404 ? "Not Found" : status == 405
                       ? "Method Not Allowed" : status == 413
                       ? "Payload Too Large" : "Bad Request";
  char head[1024];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n"
                   "Content-Security-Policy: " PORTAL_CSP "\r\n"
                   "X-Content-Type-Options: nosniff\r\n"
                   /* same-origin, not no-referrer: with no-referrer
                    * a form POST's Origin is "null" */
                   "Referrer-Policy: same-origin\r\n"
                   "X-Frame-Options: DENY\r\nCache-Control: no-store\r\n\r\n",
                   status, reason, type, len);
  if (write_all(fd, head, (size_t)n) == 0)
    (void)write_all(fd, body, len);
}

static void header_value(const char *line, const char *name, char *out,
                         size_t cap)
{
  size_t n = strlen(name);
  if (strncasecmp(line, name, n) != 0 || line[n] != ':')
    return;
  const char *v = line + n + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  snprintf(out, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
}

/* Reads one request; 0, or the HTTP status to answer. */
static int read_request(int fd, struct request *rq)
{
  char head[PORTAL_HEAD_MAX + 1];
  size_t n = 0;
  char *end = NULL;
  while (!end) {
    if (n >= PORTAL_HEAD_MAX)
      return 413;
    ssize_t r = read(fd, head + n, PORTAL_HEAD_MAX - n);
    if (r <= 0)
      return 400;
    n += (size_t)r;
    head[n] = '\0';
    end = strstr(head, "\r\n\r\n");
  }
  char version[16];
  if (sscanf(head, "%7s %255s %15s", rq->method, rq->path, version) != 3)
    return 400;
  char length[32] = "0";
  for (char *line = strstr(head, "\r\n") + 2; line < end;
       line = strstr(line, "\r\n") + 2) {
    header_value(line, "Host", rq->host, sizeof(rq->host));
    header_value(line, "Origin", rq->origin, sizeof(rq->origin));
    header_value(line, "Sec-Fetch-Site", rq->fetch_site,
                 sizeof(rq->fetch_site));
    header_value(line, "Content-Type", rq->content_type,
                 sizeof(rq->content_type));
    header_value(line, "Content-Length", length, sizeof(length));
  }
  char *stop = NULL;
  unsigned long want = strtoul(length, &stop, 10);
  if (*stop || want > PORTAL_BODY_MAX)
    return 413;
  rq->body = malloc(want + 1);
  if (!rq->body)
    return 413;
  size_t have = n - (size_t)(end + 4 - head);
  if (have > want)
    have = want;
  memcpy(rq->body, end + 4, have);
  while (have < want) {
    ssize_t r = read(fd, rq->body + have, want - have);
    if (r <= 0)
      return 400;
    have += (size_t)r;
  }
  rq->body[want] = '\0';
  rq->body_len = want;
  return 0;
}

/* One field of an application/x-www-form-urlencoded body into out ("" when
 * absent); -1 when malformed or too long. */
static int form_field(const char *body, const char *name, char *out,
                      size_t cap)
{
  size_t name_len = strlen(name);
  out[0] = '\0';
  for (const char *p = body; p && *p; p = strchr(p, '&'), p = p ? p + 1 : p) {
    size_t len = strcspn(p, "&");
    if (len <= name_len || strncmp(p, name, name_len) != 0 ||
        p[name_len] != '=')
      continue;
    const char *v = p + name_len + 1;
    size_t vlen = len - name_len - 1;
    char *plus = strndup(v, vlen);
    if (!plus)
      return -1;
    for (char *c = plus; *c; c++)
      if (*c == '+')
        *c = ' ';
    int rc = url_decode(plus, vlen, out, cap);
    free(plus);
    return rc;
  }
  return 0;
}

/* ---- the PIN ---- */

static void new_pin(struct portal *p)
{
  unsigned char raw[PORTAL_PIN_DIGITS];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    memset(raw, 0, sizeof(raw)); /* never reached with a seeded RNG */
  for (size_t i = 0; i < PORTAL_PIN_DIGITS; i++)
    p->pin[i] = (char)('0' + raw[i] % 10);
  p->pin[PORTAL_PIN_DIGITS] = '\0';
  p->pin_failures = 0;
  printf("portal PIN: %s  (type it into the page; it is spent by a "
         "successful provisioning)\n", p->pin);
  fflush(stdout);
}

/* 1 when the PIN is not needed or matches. */
static int pin_ok(struct portal *p, const char *given)
{
  if (!p->pin[0])
    return 1;
  if (strlen(given) == PORTAL_PIN_DIGITS &&
      CRYPTO_memcmp(given, p->pin, PORTAL_PIN_DIGITS) == 0)
    return 1;
  if (++p->pin_failures >= PORTAL_PIN_TRIES) {
    printf("portal: %d wrong PINs, drawing a new one\n", PORTAL_PIN_TRIES);
    new_pin(p);
  }
  return 0;
}

/* ---- provisioning ---- */

struct form {
  char scope[PROVD_DEVICE_MAX_ID];
  char regid[PROVD_DEVICE_MAX_ID];
  char key[512];
  char cert[PORTAL_FIELD_MAX];
  char priv[PORTAL_FIELD_MAX];
  char url[512];
  char pin[32];
};

static void trim(char *s)
{
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  size_t lead = strspn(s, " \t\r\n");
  memmove(s, s + lead, n - lead + 1);
}

static int read_form(const char *body, struct form *f)
{
  if (form_field(body, "idScope", f->scope, sizeof(f->scope)) ||
      form_field(body, "registrationId", f->regid, sizeof(f->regid)) ||
      form_field(body, "symmetricKey", f->key, sizeof(f->key)) ||
      form_field(body, "certificate", f->cert, sizeof(f->cert)) ||
      form_field(body, "privateKey", f->priv, sizeof(f->priv)) ||
      form_field(body, "serviceUrl", f->url, sizeof(f->url)) ||
      form_field(body, "pin", f->pin, sizeof(f->pin)))
    return -1;
  trim(f->scope);
  trim(f->regid);
  trim(f->key);
  trim(f->url);
  trim(f->pin);
  return 0;
}

/* Writes text to a new private temporary file; its name into path. */
static int temp_file(const char *text, char *path, size_t cap)
{
  const char *dir = getenv("TMPDIR");
  snprintf(path, cap, "%s/provd-portal-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0)
    return -1;
  int rc = write_all(fd, text, strlen(text));
  close(fd);
  if (rc != 0)
    unlink(path);
  return rc;
}

/* The credentials file `provd-device send` reads: the device's identity
 * and where it was assigned (mode 0600: it may hold the key). */
static int write_credentials(const struct portal *p, const struct form *f,
                             const char *url,
                             const struct provd_device_result *r)
{
  json_t *doc = json_pack(
      "{s:s,s:s,s:s,s:s,s:s}", "serviceUrl", url, "idScope", f->scope,
      "registrationId", r->registration_id, "assignedHub", r->assigned_hub,
      "deviceId", r->device_id);
  if (!doc)
    return -1;
  if (f->key[0])
    json_object_set_new(doc, "symmetricKey", json_string(f->key));
  else if (json_object_set_new(doc, "certificate", json_string(f->cert)) ||
           json_object_set_new(doc, "privateKey", json_string(f->priv)))
    return json_decref(doc), -1;
  char *text = json_dumps(doc, JSON_INDENT(2));
  json_decref(doc);
  int fd = text ? open(p->credentials, O_WRONLY | O_CREAT | O_TRUNC, 0600)
                : -1;
  int rc = fd < 0 ? -1 : write_all(fd, text, strlen(text));
  if (fd >= 0)
    close(fd);
  secret_free(text);
  return rc;
}

/* The reason a registration failed, in words for the owner. */
static void failure_words(const struct provd_err *err,
                          const struct provd_device_result *r,
                          struct text *out)
{
  const char *code = err->code;
  if (strcmp(code, "HTTP_ERROR") == 0 && r->http_status == 401)
    text_lit(out, "The service did not accept these credentials: the key "
             "is wrong, or there is no enrollment for this registration "
             "id.");
  else if (strcmp(code, "HTTP_ERROR") == 0 && r->http_status == 404)
    text_lit(out, "The service does not know this ID scope.");
  else if (strcmp(code, "REGISTRATION_DISABLED") == 0)
    text_lit(out, "This device's enrollment is disabled.");
  else if (strcmp(code, "REGISTRATION_FAILED") == 0)
    text_lit(out, "The service could not assign the device to a hub.");
  else if (strcmp(code, "NETWORK") == 0 || strcmp(code, "TLS") == 0 ||
           strcmp(code, "TIMEOUT") == 0)
    text_lit(out, "The provisioning service could not be reached.");
  else
    text_lit(out, "The registration did not succeed.");
  text_lit(out, " (");
  text_html(out, err->msg[0] ? err->msg : code);
  text_lit(out, ")");
}

/* Escaped into a new string (caller frees; "" on no memory). */
static char *html_escaped(const char *s)
{
  struct text t = {0};
  text_html(&t, s);
  return t.s ? t.s : strdup("");
}

/* The whole page: the outcome of the last attempt (HTML, may be "")
 * above the form, which keeps the scope and id typed (never the key). */
static void page_build(const struct portal *p, struct text *t,
                       const char *url, const struct form *typed,
                       const char *outcome)
{
  text_add(t, PAGE_HEAD, sizeof(PAGE_HEAD) - 1);
  text_add(t, outcome, strlen(outcome));
  char *scope = html_escaped(typed ? typed->scope : "");
  char *regid = html_escaped(typed ? typed->regid : "");
  char *esc_url = html_escaped(url);
  text_printf(t, PAGE_FORM, scope ? scope : "", regid ? regid : "",
              esc_url ? esc_url : "", p->pin[0] ? PAGE_PIN_FIELD : "");
  free(scope);
  free(regid);
  free(esc_url);
  text_add(t, PAGE_TAIL, sizeof(PAGE_TAIL) - 1);
}

static void provision(struct portal *p, int fd, const struct request *rq)
{
  struct form *f = calloc(1, sizeof(*f));
  struct text page = {0}, outcome = {0};
  if (!f || read_form(rq->body, f) != 0) {
    free(f);
    respond(fd, 400, "text/plain", "Bad form\n", 9);
    return;
  }
  if (!pin_ok(p, f->pin)) {
    free(f);
    const char msg[] = "Wrong PIN\n";
    respond(fd, 403, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
    return;
  }
  char cert_path[256] = "", key_path[256] = "";
  struct provd_device_opts o = {
      .url = f->url[0] ? f->url : p->url, .ca_file = p->ca_file,
      .id_scope = f->scope, .registration_id = f->regid,
      .timeout_s = p->timeout_s};
  if (f->key[0]) {
    o.symmetric_key = f->key;
  } else if (f->cert[0] && temp_file(f->cert, cert_path, sizeof(cert_path)) == 0 &&
             temp_file(f->priv, key_path, sizeof(key_path)) == 0) {
    o.cert_file = cert_path;
    o.key_file = key_path;
  }
  struct provd_device_result r;
  struct provd_err err;
  memset(&r, 0, sizeof(r));
  perr_clear(&err);
  int rc = provd_device_register(&o, &r, &err);
  if (cert_path[0])
    unlink(cert_path);
  if (key_path[0])
    unlink(key_path);
  if (rc == 0) {
    int saved = write_credentials(p, f, o.url, &r) == 0;
    text_lit(&outcome, "<div class=\"ok\" role=\"status\"><h2>Provisioned</h2>"
             "<dl><dt>Hub</dt><dd data-field=\"assignedHub\">");
    text_html(&outcome, r.assigned_hub);
    text_lit(&outcome, "</dd><dt>Device id</dt><dd data-field=\"deviceId\">");
    text_html(&outcome, r.device_id);
    text_lit(&outcome, "</dd></dl><p>");
    if (saved) {
      text_lit(&outcome, "Credentials saved to ");
      text_html(&outcome, p->credentials);
    } else {
      text_lit(&outcome, "The credentials file could not be written.");
    }
    text_lit(&outcome, "</p></div>");
    printf("portal: %s assigned hub=%s device_id=%s\n", r.registration_id,
           r.assigned_hub, r.device_id);
    if (p->pin[0])
      new_pin(p); /* spent */
  } else {
    text_lit(&outcome, "<div class=\"error\" role=\"alert\" data-field=\"reason\">");
    failure_words(&err, &r, &outcome);
    text_lit(&outcome, "</div>");
    printf("portal: %s not provisioned: %s\n", f->regid, err.code);
  }
  fflush(stdout);
  page_build(p, &page, o.url, f, outcome.s ? outcome.s : "");
  respond(fd, 200, "text/html; charset=utf-8", page.s ? page.s : "",
          page.len);
  OPENSSL_cleanse(f, sizeof(*f));
  free(f);
  free(page.s);
  free(outcome.s);
  provd_device_result_clear(&r);
}

/* Same-origin only: the Host must be the portal's own address (no DNS
 * rebinding) and a POST's Origin, when sent, the portal's (no CSRF from
 * another page in the owner's browser). */
static int origin_ok(const struct portal *p, const struct request *rq)
{
  if (p->loopback && strcmp(rq->host, p->host_port) != 0) {
    char local[320];
    const char *colon = strrchr(p->host_port, ':');
    snprintf(local, sizeof(local), "localhost%s", colon ? colon : "");
    if (strcmp(rq->host, local) != 0)
      return 0;
  }
  if (strcmp(rq->method, "POST") != 0)
    return 1;
  if (rq->fetch_site[0] && strcmp(rq->fetch_site, "same-origin") != 0 &&
      strcmp(rq->fetch_site, "none") != 0)
    return 0;
  if (!rq->origin[0])
    return 1; /* not a browser (curl, scripts on the device) */
  char want[320];
  snprintf(want, sizeof(want), "http://%s", rq->host);
  return strcmp(rq->origin, want) == 0;
}

static void serve(struct portal *p, int fd)
{
  struct request rq;
  memset(&rq, 0, sizeof(rq));
  int st = read_request(fd, &rq);
  pthread_mutex_lock(&p->lock);
  if (st) {
    respond(fd, st, "text/plain", "Bad request\n", 12);
  } else if (!origin_ok(p, &rq)) {
    respond(fd, 403, "text/plain", "Wrong host or origin\n", 21);
  } else if (strcmp(rq.method, "GET") == 0 && strcmp(rq.path, "/") == 0) {
    struct text page = {0};
    page_build(p, &page, p->url, NULL, "");
    respond(fd, 200, "text/html; charset=utf-8", page.s ? page.s : "",
            page.len);
    free(page.s);
  } else if (strcmp(rq.method, "GET") == 0 &&
             strcmp(rq.path, "/portal.css") == 0) {
    respond(fd, 200, "text/css", PORTAL_CSS, sizeof(PORTAL_CSS) - 1);
  } else if (strcmp(rq.method, "GET") == 0 &&
             strcmp(rq.path, "/portal.js") == 0) {
    respond(fd, 200, "text/javascript", PORTAL_JS, sizeof(PORTAL_JS) - 1);
  } else if (strcmp(rq.path, "/provision") == 0 &&
             strcmp(rq.method, "POST") == 0) {
    provision(p, fd, &rq);
  } else if (strcmp(rq.path, "/provision") == 0) {
    respond(fd, 405, "text/plain", "Method not allowed\n", 19);
  } else {
    respond(fd, 404, "text/plain", "Not found\n", 10);
  }
  pthread_mutex_unlock(&p->lock);
  if (rq.body) {
    OPENSSL_cleanse(rq.body, rq.body_len);
    free(rq.body);
  }
}

/* ---- listening ---- */

static int is_loopback(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) ==
           127;
  if (sa->sa_family == AF_INET6)
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
  return 0;
}

static int open_listener(struct portal *p)
{
  char host[256];
  const char *colon = strrchr(p->listen, ':');
  if (!colon || colon == p->listen || (size_t)(colon - p->listen) >= sizeof(host))
    return -1;
  snprintf(host, sizeof(host), "%.*s", (int)(colon - p->listen), p->listen);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
    return -1;
  p->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (p->fd >= 0)
    setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = p->fd < 0 || bind(p->fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
                   listen(p->fd, 8) != 0
               ? -1
               : 0;
  p->loopback = is_loopback(ai->ai_addr);
  freeaddrinfo(ai);
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (rc == 0 && getsockname(p->fd, (struct sockaddr *)&ss, &len) == 0) {
    int port = ntohs(ss.ss_family == AF_INET
                         ? ((struct sockaddr_in *)&ss)->sin_port
                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(p->host_port, sizeof(p->host_port),
             strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  }
  return rc;
}

struct connection {
  struct portal *portal;
  int fd;
};

static void *connection_main(void *arg)
{
  struct connection *c = arg;
  serve(c->portal, c->fd);
  close(c->fd);
  pthread_mutex_lock(&c->portal->lock);
  c->portal->connections--;
  pthread_mutex_unlock(&c->portal->lock);
  free(c);
  return NULL;
}

/* A thread for the connection, or 0 when too many are open. */
static int start_connection(struct portal *p, int fd)
{
  pthread_mutex_lock(&p->lock);
  int room = p->connections < PORTAL_MAX_CONNECTIONS;
  p->connections += room;
  pthread_mutex_unlock(&p->lock);
  struct connection *c = room ? malloc(sizeof(*c)) : NULL;
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int ok = c && (c->portal = p, c->fd = fd,
                 pthread_create(&th, &attr, connection_main, c) == 0);
  pthread_attr_destroy(&attr);
  if (!ok && room) {
    free(c);
    pthread_mutex_lock(&p->lock);
    p->connections--;
    pthread_mutex_unlock(&p->lock);
  }
  return ok;
}

static void serve_forever(struct portal *p)
{
  for (;;) {
    int fd = accept(p->fd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror("provd-device portal: accept");
      return;
    }
    struct timeval tv = {.tv_sec = PORTAL_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (!start_connection(p, fd))
      close(fd);
  }
}

static const char portal_usage[] =
    "usage: provd-device portal --listen HOST:PORT [--credentials FILE]\n"
    "                           [--url URL] [--ca FILE] [--timeout SECONDS]\n"
    "                           [--pin]\n"
    "\n"
    "Serves the device's provisioning page at http://HOST:PORT/: the owner\n"
    "types the ID scope, registration id and key (or a certificate) and\n"
    "clicks Provision; the page shows the assigned hub and device id, or\n"
    "why it failed, and FILE (default " PORTAL_DEFAULT_CREDENTIALS ",\n"
    "mode 0600) gets the credentials for `provd-device send`.  Bind it to\n"
    "127.0.0.1 (the default use); on any other address a PIN printed here\n"
    "must be typed into the page.\n"
    "\n"
    "  --listen HOST:PORT   where to listen (port 0: any free port)\n"
    "  --credentials FILE   where to save the credentials after a success\n"
    "  --url URL            the provisioning service (default $PROVD_URL,\n"
    "                       else " PROVD_DEVICE_DEFAULT_URL "); the page may "
    "change it\n"
    "  --ca FILE            PEM CA to trust for the service\n"
    "  --timeout SECONDS    per registration, default 30\n"
    "  --pin                ask for the PIN on loopback too (other users\n"
    "                       of the device can reach 127.0.0.1)\n";

int portal_main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"credentials", required_argument, NULL, 'c'},
      {"url", required_argument, NULL, 'u'},
      {"ca", required_argument, NULL, 'a'},
      {"timeout", required_argument, NULL, 't'},
      {"pin", no_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct portal p = {.credentials = PORTAL_DEFAULT_CREDENTIALS,
                     .url = getenv("PROVD_URL"), .fd = -1,
                     .lock = PTHREAD_MUTEX_INITIALIZER};
  if (!p.url || !*p.url)
    p.url = PROVD_DEVICE_DEFAULT_URL;
  int c, force_pin = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'l': p.listen = optarg; break;
    case 'c': p.credentials = optarg; break;
    case 'u': p.url = optarg; break;
    case 'a': p.ca_file = optarg; break;
    case 't': p.timeout_s = atoi(optarg); break;
    case 'p': force_pin = 1; break;
    case 'h': fputs(portal_usage, stdout); return 0;
    default: fputs(portal_usage, stderr); return 2;
    }
  }
  if (!p.listen || optind < argc || p.timeout_s < 0 || p.timeout_s > 86400) {
    fputs(portal_usage, stderr);
    return 2;
  }
  if (open_listener(&p) != 0) {
    fprintf(stderr, "provd-device portal: cannot listen on %s: %s\n",
            p.listen, strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  printf("portal: http://%s/\n", p.host_port);
  if (!p.loopback || force_pin)
    new_pin(&p);
  fflush(stdout);
  serve_forever(&p);
  close(p.fd);
  return 1;
}
