/* provctl registration ..., hub list, explain, derive-key, events. */
#include "provctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/b64.h"
#include "util/sas.h"
#include "util/url.h"

#define PATH_CAP 2048
#define QUERY_CAP 1024
#define MAX_KEY_BYTES 256
#define DEVICE_KEY_CAP 128
#define TOKEN_LIFETIME_S 3600

/* A number or string field as text, "-" when absent. */
static const char *field_text(json_t *obj, const char *key, char *buf,
                              size_t cap)
{
  json_t *v = json_object_get(obj, key);
  if (json_is_integer(v))
    snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v))
    snprintf(buf, cap, "%g", json_real_value(v));
  else if (json_is_string(v))
    snprintf(buf, cap, "%s", json_string_value(v));
  else if (json_is_boolean(v))
    snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
  else
    snprintf(buf, cap, "-");
  return buf;
}

/* Prints a JSON array answer: as JSON, or as a table of `keys`. */
static void print_rows(struct ctl *c, json_t *items, size_t n_cols,
                       const char *const *heads, const char *const *keys)
{
  char cells[8][256];
  const char *row[8];
  size_t i;
  json_t *item;
  if (ctl_has(c, CO_JSON)) {
    out_json(items);
    return;
  }
  struct out_table *t = out_table_new(n_cols, heads);
  json_array_foreach(items, i, item) {
    for (size_t k = 0; k < n_cols && k < 8; k++)
      row[k] = field_text(item, keys[k], cells[k], sizeof(cells[k]));
    out_table_row(t, row);
  }
  out_table_print_free(t);
}

/* Appends "&name=<encoded value>" to query. */
static int add_query(char *query, size_t cap, const char *name,
                     const char *value)
{
  char enc[3 * 256 + 1];
  size_t used = strlen(query);
  if (strlen(value) > 256 || url_encode(value, enc, sizeof(enc)) < 0)
    return -1;
  int w = snprintf(query + used, cap - used, "%s%s=%s", used ? "&" : "",
                   name, enc);
  return w < 0 || (size_t)w >= cap - used ? -1 : 0;
}

/* ---- registration ---------------------------------------------------- */

static void print_registration(json_t *st)
{
  char num[64];
  out_field("registration id", out_str(st, "registrationId", "-"));
  out_field("device id", out_str(st, "deviceId", "-"));
  out_field("status", out_str(st, "status", "-"));
  out_field("substatus", out_str(st, "substatus", "-"));
  out_field("assigned hub", out_str(st, "assignedHub", "-"));
  if (json_object_get(st, "errorCode"))
    out_field("error code", field_text(st, "errorCode", num, sizeof(num)));
  if (json_object_get(st, "errorMessage"))
    out_field("error message", out_str(st, "errorMessage", "-"));
  out_field("created", out_str(st, "createdDateTimeUtc", "-"));
  out_field("last updated", out_str(st, "lastUpdatedDateTimeUtc", "-"));
  out_field("etag", out_str(st, "etag", "-"));
  if (json_object_get(st, "payload"))
    out_field_json("payload", json_object_get(st, "payload"));
  /* provd extensions: the initial twin applied, where the device was */
  if (json_object_get(st, "initialTwin"))
    out_field_json("initial twin", json_object_get(st, "initialTwin"));
  if (json_object_get(st, "assignmentHistory"))
    out_field_json("history", json_object_get(st, "assignmentHistory"));
}

int cmd_registration_show(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char path[PATH_CAP];
  const char *id = c->args[0];
  if (ctl_path(path, sizeof(path), "registrations", id, NULL, NULL) != 0)
    return ctl_usage_error(c, "registration id too long");
  int rc = ctl_call(c, "GET", path, NULL, NULL, 0, &reply, &err);
  if (rc != 0 && reply.status == 404)
    perr_set(&err, "NOT_FOUND", "no registration record for %s (the device"
             " has not registered, or it was removed)", id);
  if (rc == 0 && !json_is_object(reply.json)) {
    perr_set(&err, "BAD_RESPONSE", "registration answer is not an object");
    rc = -1;
  }
  if (rc == 0 && ctl_has(c, CO_JSON))
    out_json(reply.json);
  else if (rc == 0)
    print_registration(reply.json);
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

int cmd_registration_list(struct ctl *c)
{
  static const char *const heads[] = { "REGID", "DEVICE ID", "STATUS", "HUB",
                                       "LAST UPDATED" };
  static const char *const keys[] = { "registrationId", "deviceId", "status",
                                      "assignedHub",
                                      "lastUpdatedDateTimeUtc" };
  struct provd_err err;
  char path[PATH_CAP];
  char query[QUERY_CAP] = "";
  json_t *items = NULL;
  const char *hub = ctl_value(c, CO_HUB);
  const char *grp = ctl_value(c, CO_GROUP);
  if ((hub && add_query(query, sizeof(query), "hub", hub) != 0) ||
      (grp && add_query(query, sizeof(query), "group", grp) != 0))
    return ctl_usage_error(c, "--hub or --group value too long");
  if (ctl_path(path, sizeof(path), "registrations", NULL, NULL,
               query[0] ? query : NULL) != 0)
    return ctl_usage_error(c, "filters too long");
  if (ctl_collect(c, "GET", path, NULL, c->opts.limit, &items, &err) != 0)
    return ctl_fail(&err);
  print_rows(c, items, 5, heads, keys);
  json_decref(items);
  return CTL_EXIT_OK;
}

int cmd_registration_remove(struct ctl *c)
{
  char path[PATH_CAP];
  const char *id = c->args[0];
  if (ctl_path(path, sizeof(path), "registrations", id, NULL, NULL) != 0)
    return ctl_usage_error(c, "registration id too long");
  return ctl_remove(c, path, "registration", "registrationId", id);
}

/* ---- hubs and events ------------------------------------------------- */

/* GET of a provd extension answering with a JSON array. */
static int get_array(struct ctl *c, const char *path, json_t **items,
                     struct provd_err *err)
{
  struct ctl_reply reply;
  *items = NULL;
  if (ctl_call(c, "GET", path, NULL, NULL, 0, &reply, err) != 0) {
    ctl_reply_clear(&reply);
    return -1;
  }
  if (!json_is_array(reply.json)) {
    perr_set(err, "BAD_RESPONSE", "answer is not a JSON array");
    ctl_reply_clear(&reply);
    return -1;
  }
  *items = json_incref(reply.json);
  ctl_reply_clear(&reply);
  return 0;
}

int cmd_hub_list(struct ctl *c)
{
  static const char *const heads[] = { "NAME", "HOSTNAME", "WEIGHT",
                                       "DEVICES" };
  static const char *const keys[] = { "name", "hostname", "weight",
                                      "devices" };
  struct provd_err err;
  char path[PATH_CAP];
  json_t *items;
  ctl_path(path, sizeof(path), "hubs", NULL, NULL, NULL);
  if (get_array(c, path, &items, &err) != 0)
    return ctl_fail(&err);
  print_rows(c, items, 4, heads, keys);
  json_decref(items);
  return CTL_EXIT_OK;
}

int cmd_events_list(struct ctl *c)
{
  static const char *const heads[] = { "SEQ", "TIME", "TYPE", "SUBJECT" };
  static const char *const keys[] = { "seq", "time", "type", "subject" };
  struct provd_err err;
  char path[PATH_CAP];
  char query[128] = "";
  json_t *items;
  size_t used = 0;
  if (c->opts.after >= 0)
    used = (size_t)snprintf(query, sizeof(query), "after=%" PRId64,
                            c->opts.after);
  if (c->opts.limit > 0)
    snprintf(query + used, sizeof(query) - used, "%slimit=%ld",
             used ? "&" : "", c->opts.limit);
  ctl_path(path, sizeof(path), "events", NULL, NULL,
           query[0] ? query : NULL);
  if (get_array(c, path, &items, &err) != 0)
    return ctl_fail(&err);
  print_rows(c, items, 4, heads, keys);
  json_decref(items);
  return CTL_EXIT_OK;
}

/* ---- device keys ----------------------------------------------------- */

static int derive(const char *group_key, const char *regid, char *out,
                  size_t cap, struct provd_err *err)
{
  if (sas_derive_device_key(group_key, regid, out, cap) < 0) {
    perr_set(err, "BAD_INPUT", "the group key is not valid base64");
    return -1;
  }
  return 0;
}

/* Picks the wanted key out of an AttestationMechanism. */
static int key_from_attestation(json_t *att, const char *which,
                                const char *group_id, char *out, size_t cap,
                                struct provd_err *err)
{
  const char *type = out_str(att, "type", "?");
  const char *key = out_str(json_object_get(att, "symmetricKey"), which,
                            NULL);
  if (strcmp(type, "symmetricKey") != 0) {
    perr_set(err, "NOT_SYMMETRIC", "group %s uses %s attestation; only "
             "symmetric-key groups have derived device keys", group_id,
             type);
    return -1;
  }
  if (!key || strlen(key) >= cap) {
    perr_set(err, "BAD_RESPONSE", "the service did not hand out the %s of "
             "group %s", which, group_id);
    return -1;
  }
  snprintf(out, cap, "%s", key);
  return 0;
}

/* The group's primary (or secondary) key from the service: the
 * attestationmechanism call hands out secrets; a server without it may
 * still include them in the group itself. */
static int fetch_group_key(struct ctl *c, const char *group_id, char *out,
                           size_t cap, struct provd_err *err)
{
  struct ctl_reply reply;
  char mech_path[PATH_CAP];
  char group_path[PATH_CAP];
  const char *which = ctl_has(c, CO_SECONDARY) ? "secondaryKey"
                                               : "primaryKey";
  if (ctl_path(mech_path, sizeof(mech_path), "enrollmentGroups", group_id,
               "attestationmechanism", NULL) != 0 ||
      ctl_path(group_path, sizeof(group_path), "enrollmentGroups", group_id,
               NULL, NULL) != 0) {
    perr_set(err, "BAD_INPUT", "group id too long");
    return -1;
  }
  int rc = ctl_call(c, "POST", mech_path, NULL, NULL, 0, &reply, err);
  json_t *att = reply.json;
  if (rc != 0 && (reply.status == 404 || reply.status == 405)) {
    ctl_reply_clear(&reply);
    rc = ctl_call(c, "GET", group_path, NULL, NULL, 0, &reply, err);
    if (rc != 0 && reply.status == 404)
      perr_set(err, "NOT_FOUND", "group %s not found", group_id);
    att = json_object_get(reply.json, "attestation");
  }
  if (rc == 0)
    rc = key_from_attestation(att, which, group_id, out, cap, err);
  ctl_reply_clear(&reply);
  return rc;
}

int cmd_derive_key(struct ctl *c)
{
  struct provd_err err;
  char group_key[512];
  char device_key[DEVICE_KEY_CAP];
  const char *given = ctl_value(c, CO_KEY);
  const char *group_id = c->n_args == 2 ? c->args[0] : NULL;
  const char *regid = c->args[c->n_args - 1];
  if (given && group_id)
    return ctl_usage_error(c, "give GROUP REGID or --key B64 REGID, not "
                           "both");
  if (!given && !group_id)
    return ctl_usage_error(c, "derive-key needs GROUP REGID or --key B64 "
                           "REGID");
  if (given && strlen(given) >= sizeof(group_key))
    return ctl_usage_error(c, "--key is too long");
  if (given)
    snprintf(group_key, sizeof(group_key), "%s", given);
  else if (fetch_group_key(c, group_id, group_key, sizeof(group_key),
                           &err) != 0)
    return ctl_fail(&err);
  int rc = derive(group_key, regid, device_key, sizeof(device_key), &err);
  memset(group_key, 0, sizeof(group_key));
  if (rc != 0)
    return given ? ctl_usage_error(c, "--key is not valid base64")
                 : ctl_fail(&err);
  if (ctl_has(c, CO_JSON)) {
    json_t *doc = json_pack("{s:s,s:s}", "registrationId", regid,
                            "deviceKey", device_key);
    if (group_id)
      json_object_set_new(doc, "enrollmentGroupId", json_string(group_id));
    out_json(doc);
    json_decref(doc);
  } else {
    printf("%s\n", device_key);
  }
  return CTL_EXIT_OK;
}

/* ---- explain --------------------------------------------------------- */

/* A device SAS token for the dry run, when the caller gave a key. */
static int explain_token(struct ctl *c, const char *regid, char **token)
{
  char derived[DEVICE_KEY_CAP];
  char resource[600];
  uint8_t key[MAX_KEY_BYTES];
  size_t key_len = 0;
  const char *sym = ctl_value(c, CO_SYMMETRIC_KEY);
  const char *grp = ctl_value(c, CO_GROUP_KEY);
  const char *scope = ctl_value(c, CO_SCOPE);
  *token = NULL;
  if (!sym && !grp)
    return scope ? ctl_usage_error(c, "--scope is only used with "
                                   "--symmetric-key or --group-key") : 0;
  if (sym && grp)
    return ctl_usage_error(c, "give --symmetric-key or --group-key, not "
                           "both");
  if (!scope)
    return ctl_usage_error(c, "a key needs --scope SCOPE (the token is "
                           "signed over SCOPE/registrations/REGID)");
  if (grp && sas_derive_device_key(grp, regid, derived, sizeof(derived)) < 0)
    return ctl_usage_error(c, "--group-key is not valid base64");
  if (b64_decode(grp ? derived : sym, key, sizeof(key), &key_len) < 0 ||
      key_len == 0)
    return ctl_usage_error(c, "--symmetric-key is not valid base64");
  snprintf(resource, sizeof(resource), "%s/registrations/%s", scope, regid);
  *token = sas_build(resource, key, key_len,
                     (int64_t)time(NULL) + TOKEN_LIFETIME_S, "registration");
  memset(key, 0, sizeof(key));
  return 0;
}

static int explain_body(struct ctl *c, const char *regid, json_t **body)
{
  char *token = NULL;
  json_error_t jerr;
  const char *payload = ctl_value(c, CO_PAYLOAD);
  *body = NULL;
  int rc = explain_token(c, regid, &token);
  if (rc != 0)
    return rc;
  json_t *doc = json_pack("{s:s}", "registrationId", regid);
  if (ctl_has(c, CO_CALL_WEBHOOK))
    json_object_set_new(doc, "callWebhook", json_true());
  if (token) {
    json_object_set_new(doc, "authorization", json_string(token));
    memset(token, 0, strlen(token));
    free(token);
  }
  if (payload) {
    json_t *p = json_loads(payload, JSON_DECODE_ANY, &jerr);
    if (!p) {
      json_decref(doc);
      return ctl_usage_error(c, "--payload is not JSON: %s", jerr.text);
    }
    json_object_set_new(doc, "payload", p);
  }
  *body = doc;
  return 0;
}

static void print_explain(json_t *doc)
{
  static const char *const first[] = { "outcome", "reason", "hub",
                                       "enrollment" };
  const char *key;
  json_t *v;
  for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
    if (json_object_get(doc, first[i]))
      out_field_json(first[i], json_object_get(doc, first[i]));
  }
  json_object_foreach(doc, key, v) {
    int shown = 0;
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
      shown |= strcmp(key, first[i]) == 0;
    if (!shown)
      out_field_json(key, v);
  }
}

int cmd_explain(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char path[PATH_CAP];
  json_t *body;
  const char *id = c->args[0];
  if (ctl_path(path, sizeof(path), "explain", id, NULL, NULL) != 0)
    return ctl_usage_error(c, "registration id too long");
  int rc = explain_body(c, id, &body);
  if (rc != 0)
    return rc;
  rc = ctl_call(c, "POST", path, body, NULL, 0, &reply, &err);
  json_decref(body);
  if (rc == 0 && !json_is_object(reply.json)) {
    perr_set(&err, "BAD_RESPONSE", "explain answer is not a JSON object");
    rc = -1;
  }
  if (rc == 0 && ctl_has(c, CO_JSON))
    out_json(reply.json);
  else if (rc == 0)
    print_explain(reply.json);
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}
