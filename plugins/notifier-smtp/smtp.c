/* smtp notifier: mails events through an SMTP server with libcurl
 * (smtp:// with STARTTLS, or smtps://).  Recipients, subject and body are
 * {{name}} templates over the event and the enrollment it is about; with
 * include_credentials the enrollment.created mail carries the device's
 * primary key (never logged).  See docs/plugins/smtp.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "provd/host.h"
#include "provd/notifier.h"
#include "provd/plugin.h"
#include "template.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define SMTP_MAX_TEXT 1024       /* url, from, user, password, id_scope */
#define SMTP_MAX_TEMPLATE 8192
#define SMTP_MAX_TO 16
#define SMTP_MAX_RENDERED 65536  /* one rendered subject, body or address */
#define SMTP_MAX_TIMEOUT_MS (10LL * 60 * 1000)

enum starttls { STARTTLS_TRY, STARTTLS_REQUIRED, STARTTLS_OFF };

struct smtp {
  const struct provd_host_api *host;
  struct provd_instance *inst;
  char url[SMTP_MAX_TEXT];
  char from[SMTP_MAX_TEXT];
  char *to[SMTP_MAX_TO];       /* templates, owned */
  size_t n_to;
  char subject[SMTP_MAX_TEMPLATE];
  char body[SMTP_MAX_TEMPLATE];
  char username[SMTP_MAX_TEXT];
  char password[SMTP_MAX_TEXT];
  char ca_file[SMTP_MAX_TEXT];
  char id_scope[SMTP_MAX_TEXT];
  char endpoint[SMTP_MAX_TEXT];
  enum starttls starttls;
  int include_credentials;
  int64_t timeout_ms;
  int curl_ready;
};

static const char default_subject[] =
    "provd: {{event_type}} {{registration_id}}";
static const char default_body[] =
    "Event:           {{event_type}}\n"
    "Registration id: {{registration_id}}\n"
    "Device id:       {{device_id}}\n"
    "Assigned hub:    {{assigned_hub}}\n"
    "ID scope:        {{id_scope}}\n"
    "Endpoint:        {{endpoint}}\n"
    "Reason:          {{reason}}\n"
    "Event id:        {{event_id}}\n";

/* ---- lifecycle ---- */

static int smtp_create(const struct provd_host_api *host,
                       struct provd_instance *inst, void **state,
                       struct provd_err *err)
{
  struct smtp *sm = calloc(1, sizeof(*sm));
  if (!sm) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  sm->host = host;
  sm->inst = inst;
  sm->timeout_ms = 30000;
  *state = sm;
  return PROVD_OK;
}

static int copy_option(const struct smtp *sm, const struct provd_cfg *o,
                       const char *name, char *out, size_t cap,
                       const char *fallback, struct provd_err *err)
{
  const char *v = NULL;
  int rc = o ? sm->host->cfg_str(o, name, &v) : PROVD_NOT_FOUND;
  if (rc == PROVD_NOT_FOUND && fallback)
    v = fallback;
  else if (rc != PROVD_OK || strlen(v) >= cap) {
    sm->host->err_set(err, "BAD_OPTION", "%s: missing or longer than %zu "
                      "bytes", name, cap - 1);
    return PROVD_E_CONFIG;
  }
  memcpy(out, v, strlen(v) + 1);
  return PROVD_OK;
}

/* No CR or LF may reach a header or an SMTP command. */
static int one_line(const char *s)
{
  return strpbrk(s, "\r\n") == NULL;
}

static int configure_recipients(struct smtp *sm, const struct provd_cfg *o,
                                struct provd_err *err)
{
  const struct provd_cfg *list = NULL;
  if (sm->host->cfg_child(o, "to", &list) != PROVD_OK ||
      sm->host->cfg_count(list) == 0 ||
      sm->host->cfg_count(list) > SMTP_MAX_TO) {
    sm->host->err_set(err, "BAD_OPTION", "to: 1 to %d recipients (addresses "
                      "or templates)", SMTP_MAX_TO);
    return PROVD_E_CONFIG;
  }
  for (size_t i = 0; i < sm->host->cfg_count(list); i++) {
    const struct provd_cfg *item = NULL;
    const char *t = sm->host->cfg_at(list, i, &item) == PROVD_OK
                        ? sm->host->cfg_text(item)
                        : NULL;
    if (!t || !t[0] || !one_line(t) || strlen(t) >= SMTP_MAX_TEXT) {
      sm->host->err_set(err, "BAD_OPTION", "to[%zu]: not an address or "
                        "template", i);
      return PROVD_E_CONFIG;
    }
    if (!(sm->to[sm->n_to] = strdup(t))) {
      sm->host->err_set(err, "INTERNAL", "out of memory");
      return PROVD_E_NOMEM;
    }
    sm->n_to++;
  }
  return PROVD_OK;
}

static int configure_starttls(struct smtp *sm, const struct provd_cfg *o,
                              struct provd_err *err)
{
  char mode[16];
  int rc = copy_option(sm, o, "starttls", mode, sizeof(mode), "try", err);
  if (rc != PROVD_OK)
    return rc;
  sm->starttls = strcmp(mode, "required") == 0 ? STARTTLS_REQUIRED
                 : strcmp(mode, "off") == 0    ? STARTTLS_OFF
                                               : STARTTLS_TRY;
  return PROVD_OK;
}

static int smtp_configure(void *state, const struct provd_cfg *o,
                          struct provd_err *err)
{
  struct smtp *sm = state;
  int rc = copy_option(sm, o, "url", sm->url, sizeof(sm->url), NULL, err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "from", sm->from, sizeof(sm->from), NULL, err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "subject", sm->subject, sizeof(sm->subject),
                     default_subject, err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "body", sm->body, sizeof(sm->body),
                     default_body, err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "username", sm->username, sizeof(sm->username),
                     "", err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "password", sm->password, sizeof(sm->password),
                     "", err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "ca_file", sm->ca_file, sizeof(sm->ca_file), "",
                     err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "id_scope", sm->id_scope, sizeof(sm->id_scope),
                     "", err);
  if (rc == PROVD_OK)
    rc = copy_option(sm, o, "endpoint", sm->endpoint, sizeof(sm->endpoint),
                     "", err);
  if (rc == PROVD_OK)
    rc = configure_starttls(sm, o, err);
  if (rc == PROVD_OK)
    rc = configure_recipients(sm, o, err);
  if (rc != PROVD_OK)
    return rc;
  if (strncmp(sm->url, "smtp://", 7) != 0 &&
      strncmp(sm->url, "smtps://", 8) != 0) {
    sm->host->err_set(err, "BAD_OPTION", "url: must be smtp:// or smtps://");
    return PROVD_E_CONFIG;
  }
  if (!one_line(sm->from) || !strchr(sm->from, '@')) {
    sm->host->err_set(err, "BAD_OPTION", "from: not an address");
    return PROVD_E_CONFIG;
  }
  int flag = 0;
  if (sm->host->cfg_bool(o, "include_credentials", &flag) == PROVD_OK)
    sm->include_credentials = flag;
  int64_t ms = sm->timeout_ms;
  if (sm->host->cfg_int(o, "timeout", &ms) == PROVD_OK &&
      (ms < 100 || ms > SMTP_MAX_TIMEOUT_MS)) {
    sm->host->err_set(err, "BAD_OPTION", "timeout: must be 100ms..10m");
    return PROVD_E_CONFIG;
  }
  sm->timeout_ms = ms;
  return PROVD_OK;
}

static int smtp_start(void *state, struct provd_err *err)
{
  struct smtp *sm = state;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    sm->host->err_set(err, "CURL_INIT", "libcurl could not be initialised");
    return PROVD_E_INTERNAL;
  }
  sm->curl_ready = 1;
  if (sm->include_credentials)
    sm->host->log(sm->inst, NULL, PROVD_LOG_WARN,
                  "include_credentials is on: enrollment.created mails carry "
                  "device keys in clear text");
  return PROVD_OK;
}

static void smtp_stop(void *state)
{
  struct smtp *sm = state;
  if (sm->curl_ready)
    curl_global_cleanup();
  sm->curl_ready = 0;
}

static void smtp_destroy(void *state)
{
  struct smtp *sm = state;
  if (!sm)
    return;
  for (size_t i = 0; i < sm->n_to; i++)
    free(sm->to[i]);
  memset(sm->password, 0, sizeof(sm->password));
  free(sm);
}

/* ---- template values ---- */

static void set_str(json_t *values, const char *name, const char *v)
{
  if (v && v[0])
    json_object_set_new(values, name, json_string(v));
}

static const char *str_at(const json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

/* initialTwin.tags.NAME (strings only) as "tags.NAME". */
static void set_tags(json_t *values, const json_t *record)
{
  const json_t *tags = json_object_get(
      json_object_get(record, "initialTwin"), "tags");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)tags, k, v) {
    char name[160];
    if (json_is_string(v) &&
        (size_t)snprintf(name, sizeof(name), "tags.%s", k) < sizeof(name))
      set_str(values, name, json_string_value(v));
  }
}

static const char *primary_key_of(const json_t *record)
{
  return str_at(json_object_get(json_object_get(record, "attestation"),
                                "symmetricKey"),
                "primaryKey");
}

static json_t *template_values(const struct smtp *sm,
                               const struct provd_event *ev,
                               const json_t *body, const json_t *record)
{
  json_t *values = json_object();
  char seq[24];
  snprintf(seq, sizeof(seq), "%" PRIu64, ev->id);
  set_str(values, "event_type", ev->type);
  set_str(values, "event_id", ev->event_id);
  set_str(values, "sequence", seq);
  set_str(values, "registration_id", ev->registration_id);
  const char *device = str_at(body, "deviceId");
  if (!device)
    device = str_at(record, "deviceId");
  set_str(values, "device_id", device ? device : ev->registration_id);
  set_str(values, "assigned_hub", str_at(body, "assignedHub"));
  set_str(values, "reason", str_at(body, "reason"));
  set_str(values, "id_scope", sm->id_scope);
  set_str(values, "endpoint", sm->endpoint);
  set_tags(values, record);
  if (sm->include_credentials)
    set_str(values, "primary_key", primary_key_of(record));
  return values;
}

/* ---- the message ---- */

struct buf {
  char *p;
  size_t len, cap;
  int failed;
};

static void add(struct buf *b, const char *s, size_t n)
{
  if (b->failed)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void adds(struct buf *b, const char *s)
{
  add(b, s, strlen(s));
}

static int ascii_only(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

/* Subject header: plain when ASCII, else RFC 2047 encoded words of at
 * most 45 bytes each, split on UTF-8 character boundaries. */
static void add_subject(const struct smtp *sm, struct buf *b, const char *s)
{
  adds(b, "Subject: ");
  if (ascii_only(s)) {
    adds(b, s);
    adds(b, "\r\n");
    return;
  }
  size_t len = strlen(s), at = 0;
  while (at < len) {
    size_t n = len - at > 45 ? 45 : len - at;
    while (at + n < len && n > 1 && ((unsigned char)s[at + n] & 0xc0) == 0x80)
      n--;
    char enc[80];
    if (sm->host->b64_encode((const uint8_t *)s + at, n, enc, sizeof(enc),
                             NULL, NULL) != PROVD_OK) {
      b->failed = 1;
      return;
    }
    adds(b, at ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
    adds(b, enc);
    adds(b, "?=");
    at += n;
  }
  adds(b, "\r\n");
}

/* The body as base64 lines of 76 characters. */
static void add_body_b64(const struct smtp *sm, struct buf *b,
                         const char *text)
{
  size_t len = strlen(text);
  for (size_t at = 0; at < len; at += 57) {
    size_t n = len - at > 57 ? 57 : len - at;
    char line[80];
    if (sm->host->b64_encode((const uint8_t *)text + at, n, line,
                             sizeof(line), NULL, NULL) != PROVD_OK) {
      b->failed = 1;
      return;
    }
    adds(b, line);
    adds(b, "\r\n");
  }
}

static void add_date(struct buf *b, int64_t unix_ms)
{
  time_t s = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  char line[64];
  snprintf(line, sizeof(line), "Date: %s, %02d %s %04d %02d:%02d:%02d +0000"
           "\r\n", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  adds(b, line);
}

/* "<event-id@domain-of-from>": the same event always has the same id. */
static void add_message_id(const struct smtp *sm, struct buf *b,
                           const struct provd_event *ev)
{
  char line[SMTP_MAX_TEXT + 96];
  const char *domain = strrchr(sm->from, '@') + 1;
  size_t dlen = strcspn(domain, ">");
  char id[48];
  snprintf(id, sizeof(id), "%s", ev->event_id ? ev->event_id : "");
  snprintf(line, sizeof(line), "Message-ID: <%s.provd@%.*s>\r\n", id,
           (int)dlen, domain);
  adds(b, line);
}

static char *compose(const struct smtp *sm, const struct provd_event *ev,
                     const char *const *to, size_t n_to, const char *subject,
                     const char *text)
{
  struct buf b = {0};
  add_date(&b, ev->time_ms);
  adds(&b, "From: ");
  adds(&b, sm->from);
  adds(&b, "\r\nTo: ");
  for (size_t i = 0; i < n_to; i++) {
    adds(&b, i ? ", " : "");
    adds(&b, to[i]);
  }
  adds(&b, "\r\n");
  add_message_id(sm, &b, ev);
  add_subject(sm, &b, subject);
  adds(&b, "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           "X-Provd-Event-Type: ");
  adds(&b, ev->type);
  adds(&b, "\r\n\r\n");
  add_body_b64(sm, &b, text);
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* ---- recipients ---- */

/* A rendered address list item: "a@b" or "a@b, c@d"; each part must be
 * one line with an @ and no angle brackets. */
static size_t split_addresses(char *text, char **out, size_t cap)
{
  size_t n = 0;
  for (char *save = NULL, *part = strtok_r(text, ",", &save);
       part && n < cap; part = strtok_r(NULL, ",", &save)) {
    while (*part == ' ')
      part++;
    size_t len = strlen(part);
    while (len && part[len - 1] == ' ')
      part[--len] = '\0';
    if (len && one_line(part) && strchr(part, '@') && !strpbrk(part, "<>"))
      out[n++] = part;
  }
  return n;
}

/* ---- sending ---- */

struct reader {
  const char *data;
  size_t len, at;
};

static size_t read_message(char *dst, size_t size, size_t n, void *ud)
{
  struct reader *r = ud;
  size_t room = size * n, left = r->len - r->at;
  size_t k = left < room ? left : room;
  memcpy(dst, r->data + r->at, k);
  r->at += k;
  return k;
}

static int judge(struct smtp *sm, CURLcode cc, long code,
                 struct provd_err *err)
{
  if (cc == CURLE_OK)
    return PROVD_OK;
  if (code >= 500 && code < 600) {
    sm->host->err_set(err, "SMTP_REJECTED", "%s refused the mail (%ld): %s",
                      sm->url, code, curl_easy_strerror(cc));
    return PROVD_E_INVAL;
  }
  if (cc == CURLE_OPERATION_TIMEDOUT) {
    sm->host->err_set(err, "SMTP_TIMEOUT", "%s did not answer in time",
                      sm->url);
    return PROVD_E_TIMEOUT;
  }
  sm->host->err_set(err, "SMTP_UNAVAILABLE", "%s: %s (last reply %ld)",
                    sm->url, curl_easy_strerror(cc), code);
  return PROVD_E_UNAVAILABLE;
}

static int send_mail(struct smtp *sm, const char *const *to, size_t n_to,
                     const char *message, struct provd_err *err)
{
  CURL *c = curl_easy_init();
  struct curl_slist *rcpt = NULL;
  char from[SMTP_MAX_TEXT + 3];
  snprintf(from, sizeof(from), "<%s>", sm->from);
  for (size_t i = 0; c && i < n_to; i++) {
    struct curl_slist *next = curl_slist_append(rcpt, to[i]);
    if (!next) {
      curl_easy_cleanup(c);
      c = NULL;
      break;
    }
    rcpt = next;
  }
  if (!c) {
    curl_slist_free_all(rcpt);
    sm->host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  struct reader r = {message, strlen(message), 0};
  curl_easy_setopt(c, CURLOPT_URL, sm->url);
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_message);
  curl_easy_setopt(c, CURLOPT_READDATA, &r);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)sm->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_USE_SSL,
                   sm->starttls == STARTTLS_REQUIRED ? (long)CURLUSESSL_ALL
                   : sm->starttls == STARTTLS_TRY    ? (long)CURLUSESSL_TRY
                                                     : (long)CURLUSESSL_NONE);
  if (sm->username[0]) {
    curl_easy_setopt(c, CURLOPT_USERNAME, sm->username);
    curl_easy_setopt(c, CURLOPT_PASSWORD, sm->password);
  }
  if (sm->ca_file[0])
    curl_easy_setopt(c, CURLOPT_CAINFO, sm->ca_file);
  CURLcode cc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(rcpt);
  curl_easy_cleanup(c);
  return judge(sm, cc, code, err);
}

/* Renders every `to` template; *n gets the addresses (pointers into
 * *storage, which the caller frees). */
static int recipients(const struct smtp *sm, const json_t *values,
                      char **storage, char **to, size_t *n)
{
  *n = 0;
  for (size_t i = 0; i < sm->n_to; i++) {
    storage[i] = template_render(sm->to[i], values, SMTP_MAX_TEXT);
    if (!storage[i])
      return PROVD_E_NOMEM;
    *n += split_addresses(storage[i], to + *n, SMTP_MAX_TO * 4 - *n);
  }
  return PROVD_OK;
}

static int smtp_deliver(void *state, struct provd_call *call,
                        const struct provd_event *ev, struct provd_err *err)
{
  struct smtp *sm = state;
  json_t *body = json_loads(ev->body_json ? ev->body_json : "{}", 0, NULL);
  const char *record_text = PROVD_HAS(ev, struct provd_event, record_json)
                                ? ev->record_json
                                : NULL;
  json_t *record = record_text ? json_loads(record_text, 0, NULL) : NULL;
  json_t *values = template_values(sm, ev, body, record);
  char *storage[SMTP_MAX_TO] = {0}, *to[SMTP_MAX_TO * 4];
  size_t n_to = 0;
  char *subject = NULL, *text = NULL, *message = NULL;
  int rc = recipients(sm, values, storage, to, &n_to);
  if (rc == PROVD_OK && n_to == 0) {
    sm->host->err_set(err, "SMTP_NO_RECIPIENT", "event %" PRIu64 " %s: no "
                      "recipient address after rendering `to`", ev->id,
                      ev->type);
    rc = PROVD_E_INVAL;
  }
  if (rc == PROVD_OK) {
    subject = template_render(sm->subject, values, SMTP_MAX_RENDERED);
    text = template_render(sm->body, values, SMTP_MAX_RENDERED);
    if (subject)
      for (char *p = subject; *p; p++)
        if (*p == '\r' || *p == '\n')
          *p = ' ';
    /* The back-office flow: the new device's owner gets its key. */
    const char *key = json_string_value(json_object_get(values,
                                                        "primary_key"));
    if (text && key && strcmp(ev->type, "enrollment.created") == 0 &&
        !strstr(sm->body, "{{primary_key}}")) {
      size_t need = strlen(text) + strlen(key) + 32;
      char *with = malloc(need);
      if (with)
        snprintf(with, need, "%sPrimary key:     %s\n", text, key);
      free(text);
      text = with;
    }
    message = subject && text ? compose(sm, ev, (const char *const *)to,
                                        n_to, subject, text)
                              : NULL;
    if (!message) {
      sm->host->err_set(err, "INTERNAL", "out of memory");
      rc = PROVD_E_NOMEM;
    }
  }
  if (rc == PROVD_OK)
    rc = send_mail(sm, (const char *const *)to, n_to, message, err);
  if (rc == PROVD_OK)
    sm->host->log(sm->inst, call, PROVD_LOG_DEBUG, "event %" PRIu64 " %s "
                  "mailed to %zu recipient(s)", ev->id, ev->type, n_to);
  for (size_t i = 0; i < SMTP_MAX_TO; i++)
    free(storage[i]);
  if (text)
    memset(text, 0, strlen(text)); /* may hold a key */
  if (message)
    memset(message, 0, strlen(message));
  free(subject);
  free(text);
  free(message);
  json_decref(values);
  json_decref(record);
  json_decref(body);
  return rc;
}

/* ---- descriptor ---- */

static const char *const starttls_values[] = {"try", "required", "off",
                                              NULL};

static const struct provd_option smtp_options[] = {
  {"url", PROVD_OPT_URL, NULL, PROVD_OPT_REQUIRED,
   "SMTP server: smtp://HOST:PORT (STARTTLS as `starttls` says) or "
   "smtps://HOST:PORT (TLS from the start).", NULL},
  {"from", PROVD_OPT_STRING, NULL, PROVD_OPT_REQUIRED,
   "Sender address (envelope and From header).", NULL},
  {"to", PROVD_OPT_STRING_LIST, NULL, PROVD_OPT_REQUIRED,
   "Recipients: addresses or templates such as {{tags.contact}}.", NULL},
  {"subject", PROVD_OPT_STRING, default_subject, 0,
   "Subject template.", NULL},
  {"body", PROVD_OPT_STRING, NULL, 0,
   "Body template (plain text); the default lists the event's fields.",
   NULL},
  {"starttls", PROVD_OPT_ENUM, "try", 0,
   "For smtp:// URLs: use STARTTLS when offered (try), insist on it "
   "(required) or never (off).", starttls_values},
  {"username", PROVD_OPT_STRING, NULL, 0,
   "SMTP AUTH user; no authentication when absent.", NULL},
  {"password", PROVD_OPT_STRING, NULL, PROVD_OPT_SENSITIVE,
   "SMTP AUTH password; or password_file: PATH.", NULL},
  {"ca_file", PROVD_OPT_PATH, NULL, 0,
   "PEM file of CAs to trust for TLS (default: the system store).", NULL},
  {"timeout", PROVD_OPT_DURATION, "30s", 0,
   "How long one mail may take (100ms to 10m).", NULL},
  {"include_credentials", PROVD_OPT_BOOL, "false", 0,
   "Put the device's primary key into enrollment.created mails (clear "
   "text: read the risks in the docs).", NULL},
  {"id_scope", PROVD_OPT_STRING, NULL, 0,
   "Value of {{id_scope}} (the ID scope devices use).", NULL},
  {"endpoint", PROVD_OPT_STRING, NULL, 0,
   "Value of {{endpoint}} (the host name devices connect to).", NULL},
  {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle smtp_lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = smtp_create,
  .configure = smtp_configure,
  .start = smtp_start,
  .stop = smtp_stop,
  .destroy = smtp_destroy,
};

static const struct provd_notifier_ops smtp_ops = {
  .struct_size = sizeof(struct provd_notifier_ops),
  .deliver = smtp_deliver,
  .flags = PROVD_NOTIFIER_WANTS_RECORD,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_NOTIFIER,
  .flags = PROVD_PLUGIN_THREADSAFE,
  .min_host_minor = 3, /* event ids, record_json */
  .name = "smtp",
  .version = PROVD_VERSION,
  .description = "Mails events through an SMTP server.",
  .vendor = "provd project",
  .options = smtp_options,
  .lifecycle = &smtp_lifecycle,
  .ops = &smtp_ops,
};
