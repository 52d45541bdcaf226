/* The connection to the provd service API: connection string, service SAS
 * token (dps-protocol.md 3.3), requests and paging. */
#include "provctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/b64.h"
#include "util/connstr.h"
#include "util/sas.h"
#include "util/url.h"

#define TOKEN_LIFETIME_S 3600
#define CONN_STR_MAX 4096
#define MAX_KEY_BYTES 256
#define MAX_PAGES 10000
#define PATH_CAP 2048

int ctl_read_small_file(const char *path, char *out, size_t cap)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(out, 1, cap - 1, f);
  int too_big = n == cap - 1 && fgetc(f) != EOF;
  int failed = ferror(f);
  fclose(f);
  if (failed || too_big) {
    errno = failed ? EIO : EFBIG;
    return -1;
  }
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                   out[n - 1] == ' ' || out[n - 1] == '\t'))
    out[--n] = '\0';
  return 0;
}

/* --connection-string, else $PROVD_CONNECTION_STRING, else the file
 * provd writes into its data dir on first start. */
static int load_conn_str(const struct ctl *c, char *out, size_t cap,
                         struct provd_err *err)
{
  const char *given = ctl_value(c, CO_CONN_STR);
  if (!given)
    given = getenv("PROVD_CONNECTION_STRING");
  if (given && given[0]) {
    if (strlen(given) >= cap) {
      perr_set(err, "BAD_CONNECTION_STRING", "connection string too long");
      return -1;
    }
    snprintf(out, cap, "%s", given);
    return 0;
  }
  const char *dir = ctl_value(c, CO_DATA_DIR);
  char path[1024];
  snprintf(path, sizeof(path), "%s/service-connection-string",
           dir ? dir : CTL_DEFAULT_DATA_DIR);
  if (ctl_read_small_file(path, out, cap) != 0) {
    perr_set(err, "NO_CONNECTION_STRING", "cannot read %s: %s — start "
             "provd once (make run) or pass --connection-string", path,
             strerror(errno));
    return -1;
  }
  return 0;
}

static char *make_service_token(const struct connstr *cs,
                                struct provd_err *err)
{
  uint8_t key[MAX_KEY_BYTES];
  size_t key_len = 0;
  if (b64_decode(cs->key, key, sizeof(key), &key_len) < 0 || key_len == 0) {
    perr_set(err, "BAD_CONNECTION_STRING",
             "SharedAccessKey in the connection string is not base64");
    return NULL;
  }
  /* sr is the plain host name; url-encoding a host name changes nothing */
  char *token = sas_build(cs->host, key, key_len,
                          (int64_t)time(NULL) + TOKEN_LIFETIME_S,
                          cs->key_name);
  memset(key, 0, sizeof(key));
  if (!token)
    perr_set(err, "NO_MEMORY", "could not build the service token");
  return token;
}

/* --ca, else DIR/tls/ca.pem when provd made one, else the system store. */
static const char *pick_ca(const struct ctl *c, char *buf, size_t cap)
{
  if (ctl_value(c, CO_CA))
    return ctl_value(c, CO_CA);
  const char *dir = ctl_value(c, CO_DATA_DIR);
  snprintf(buf, cap, "%s/tls/ca.pem", dir ? dir : CTL_DEFAULT_DATA_DIR);
  return access(buf, R_OK) == 0 ? buf : NULL;
}

int ctl_connect(struct ctl *c, struct provd_err *err)
{
  char text[CONN_STR_MAX];
  char ca_buf[1024];
  char ua[64];
  struct connstr cs;
  if (c->http)
    return 0;
  if (load_conn_str(c, text, sizeof(text), err) != 0 ||
      connstr_parse(text, &cs, err) != 0)
    return -1;
  memset(text, 0, sizeof(text));
  c->token = make_service_token(&cs, err);
  memset(&cs, 0, sizeof(cs));
  if (!c->token)
    return -1;
  const char *url = ctl_value(c, CO_URL);
  if (!url)
    url = getenv("PROVD_URL");
  if (!url || !url[0])
    url = CTL_DEFAULT_URL;
  snprintf(ua, sizeof(ua), "provctl/%s", PROVD_VERSION);
  c->http = https_client_new(url, pick_ca(c, ca_buf, sizeof(ca_buf)), ua, 30,
                             err);
  return c->http ? 0 : -1;
}

void ctl_disconnect(struct ctl *c)
{
  https_client_free(c->http);
  c->http = NULL;
  if (c->token) {
    memset(c->token, 0, strlen(c->token));
    free(c->token);
    c->token = NULL;
  }
}

int ctl_path(char *out, size_t cap, const char *collection, const char *id,
             const char *suffix, const char *query)
{
  char id_enc[3 * 256 + 1] = "";
  if (id && (strlen(id) > 256 || url_encode(id, id_enc, sizeof(id_enc)) < 0))
    return -1;
  int w = snprintf(out, cap, "/%s%s%s%s%s?api-version=%s%s%s", collection,
                   id ? "/" : "", id ? id_enc : "", suffix ? "/" : "",
                   suffix ? suffix : "", CTL_API_VERSION, query ? "&" : "",
                   query ? query : "");
  return w < 0 || (size_t)w >= cap ? -1 : 0;
}

void ctl_reply_clear(struct ctl_reply *r)
{
  json_decref(r->json);
  memset(r, 0, sizeof(*r));
}

static int parse_reply_body(const struct https_response *rs,
                            struct ctl_reply *reply, struct provd_err *err)
{
  json_error_t jerr;
  if (rs->body_len == 0)
    return 0;
  reply->json = json_loadb(rs->body, rs->body_len, JSON_DECODE_ANY, &jerr);
  if (!reply->json) {
    perr_set(err, "BAD_RESPONSE", "HTTP %ld answer is not JSON: %s",
             rs->status, jerr.text);
    return -1;
  }
  return 0;
}

static void append_hint(struct provd_err *err, const char *hint)
{
  size_t used = strlen(err->msg);
  snprintf(err->msg + used, sizeof(err->msg) - used, "%s", hint);
}

int ctl_request(struct ctl *c, struct https_request *rq,
                struct https_response *rs, struct provd_err *err)
{
  memset(rs, 0, sizeof(*rs));
  if (ctl_connect(c, err) != 0)
    return -1;
  rq->authorization = c->token;
  if (https_do(c->http, rq, rs, err) != 0) {
    if (strcmp(err->code, "NETWORK") == 0)
      append_hint(err, " — is provd running (make run), and is --url "
                  "right?");
    else if (strcmp(err->code, "TLS") == 0)
      append_hint(err, " — is --ca (default DIR/tls/ca.pem) the CA of "
                  "this server?");
    return -1;
  }
  if (!https_ok(rs)) {
    char text_err[512];
    https_describe_error(rs, text_err, sizeof(text_err));
    perr_set(err, "HTTP_ERROR", "%s", text_err);
    return -1;
  }
  return 0;
}

int ctl_call(struct ctl *c, const char *method, const char *path,
             json_t *body, const char *const *headers, size_t n_headers,
             struct ctl_reply *reply, struct provd_err *err)
{
  struct https_response rs;
  char *text = NULL;
  memset(reply, 0, sizeof(*reply));
  if (body) {
    text = json_dumps(body, JSON_COMPACT);
    if (!text) {
      perr_set(err, "NO_MEMORY", "out of memory");
      return -1;
    }
  }
  struct https_request rq = {
    .method = method, .path = path, .body = text, .headers = headers,
    .n_headers = n_headers,
  };
  int rc = ctl_request(c, &rq, &rs, err);
  free(text);
  reply->status = rs.status;
  if (rs.status) {
    snprintf(reply->etag, sizeof(reply->etag), "%s", rs.etag);
    snprintf(reply->continuation, sizeof(reply->continuation), "%s",
             rs.continuation);
  }
  if (rc == 0)
    rc = parse_reply_body(&rs, reply, err);
  https_response_clear(&rs);
  return rc;
}

/* Appends the items of one page; -1 when the page is not an array. */
static int take_page(json_t *page, json_t *items, long limit,
                     struct provd_err *err)
{
  size_t i;
  json_t *item;
  if (!json_is_array(page)) {
    perr_set(err, "BAD_RESPONSE", "a list answer is not a JSON array");
    return -1;
  }
  json_array_foreach(page, i, item) {
    if (limit > 0 && (long)json_array_size(items) >= limit)
      break;
    json_array_append(items, item);
  }
  return 0;
}

int ctl_collect(struct ctl *c, const char *method, const char *path,
                json_t *body, long limit, json_t **items,
                struct provd_err *err)
{
  char size_hdr[64];
  char cont_hdr[2200];
  char last_cont[2048] = "";
  const char *hdrs[2] = { size_hdr, cont_hdr };
  json_t *all = json_array();
  *items = NULL;
  if (!all) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  for (int page = 0; page < MAX_PAGES; page++) {
    struct ctl_reply reply;
    long want = CTL_PAGE_SIZE;
    if (limit > 0 && limit - (long)json_array_size(all) < want)
      want = limit - (long)json_array_size(all);
    snprintf(size_hdr, sizeof(size_hdr), "x-ms-max-item-count: %ld", want);
    snprintf(cont_hdr, sizeof(cont_hdr), "x-ms-continuation: %s", last_cont);
    if (ctl_call(c, method, path, body, hdrs, last_cont[0] ? 2 : 1, &reply,
                 err) != 0 ||
        take_page(reply.json, all, limit, err) != 0) {
      ctl_reply_clear(&reply);
      json_decref(all);
      return -1;
    }
    int done = !reply.continuation[0] ||
               (limit > 0 && (long)json_array_size(all) >= limit);
    /* A server handing out the same token twice would loop forever. */
    int stuck = strcmp(reply.continuation, last_cont) == 0;
    snprintf(last_cont, sizeof(last_cont), "%s", reply.continuation);
    ctl_reply_clear(&reply);
    if (done) {
      *items = all;
      return 0;
    }
    if (stuck) {
      perr_set(err, "BAD_RESPONSE", "the server repeated a continuation "
               "token; stopping");
      json_decref(all);
      return -1;
    }
  }
  perr_set(err, "BAD_RESPONSE", "more than %d pages; use --limit",
           MAX_PAGES);
  json_decref(all);
  return -1;
}

int ctl_remove(struct ctl *c, const char *path, const char *noun,
               const char *id_field, const char *id)
{
  struct provd_err err;
  struct ctl_reply reply;
  char if_match[300];
  const char *hdrs[1] = { if_match };
  const char *etag = ctl_value(c, CO_ETAG);
  if (etag)
    snprintf(if_match, sizeof(if_match), "If-Match: %s", etag);
  int rc = ctl_call(c, "DELETE", path, NULL, hdrs, etag ? 1 : 0, &reply,
                    &err);
  long status = reply.status;
  ctl_reply_clear(&reply);
  if (rc != 0) {
    if (status == 404)
      perr_set(&err, "NOT_FOUND", "%s %s not found", noun, id);
    return ctl_fail(&err);
  }
  if (ctl_has(c, CO_JSON)) {
    json_t *doc = json_pack("{s:s,s:b}", id_field, id, "removed", 1);
    out_json(doc);
    json_decref(doc);
  } else {
    printf("removed %s %s\n", noun, id);
  }
  return CTL_EXIT_OK;
}
