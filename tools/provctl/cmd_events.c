/* provctl events show | retry | verify: the journal's provd extensions
 * (events list is in cmd_misc.c with the other listings). */
#include "provctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 256

/* One call on /events/<seq>[/suffix] or /events/verify; 0 with
 * reply->json an object, else -1 with err (404 named `missing`). */
static int events_call(struct ctl *c, const char *method, const char *item,
                       const char *suffix, const char *missing,
                       struct ctl_reply *reply, struct provd_err *err)
{
  char path[PATH_CAP];
  if (ctl_path(path, sizeof(path), "events", item, suffix, NULL) != 0) {
    perr_set(err, "USAGE", "event sequence number too long");
    return -1;
  }
  int rc = ctl_call(c, method, path, NULL, NULL, 0, reply, err);
  if (rc != 0 && reply->status == 404 && missing)
    perr_set(err, "NOT_FOUND", "%s", missing);
  if (rc == 0 && !json_is_object(reply->json)) {
    perr_set(err, "BAD_RESPONSE", "the answer is not an object");
    rc = -1;
  }
  return rc;
}

static int valid_seq(const char *text)
{
  if (!text[0] || strlen(text) > 19)
    return 0;
  for (const char *p = text; *p; p++)
    if (*p < '0' || *p > '9')
      return 0;
  return 1;
}

static void print_delivery(json_t *d)
{
  char line[512];
  const char *reason = out_str(d, "reason", NULL);
  snprintf(line, sizeof(line), "%s%s%s%s", out_str(d, "state", "?"),
           reason && reason[0] ? " (" : "", reason ? reason : "",
           reason && reason[0] ? ")" : "");
  out_field(out_str(d, "instance", "?"), line);
}

int cmd_events_show(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char missing[96];
  if (!valid_seq(c->args[0]))
    return ctl_usage_error(c, "SEQ must be an event's sequence number");
  snprintf(missing, sizeof(missing), "no event %s in the journal",
           c->args[0]);
  int rc = events_call(c, "GET", c->args[0], NULL, missing, &reply, &err);
  if (rc == 0 && ctl_has(c, CO_JSON)) {
    out_json(reply.json);
  } else if (rc == 0) {
    json_t *ev = reply.json, *d;
    size_t i;
    out_field_json("seq", json_object_get(ev, "seq"));
    out_field("id", out_str(ev, "id", "-"));
    out_field("type", out_str(ev, "type", "-"));
    out_field("time", out_str(ev, "time", "-"));
    out_field("subject", out_str(ev, "subject", "-"));
    out_field_json("body", json_object_get(ev, "body"));
    out_field("hash", out_str(ev, "hash", "-"));
    json_array_foreach(json_object_get(ev, "deliveries"), i, d)
      print_delivery(d);
  }
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

int cmd_events_retry(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char missing[96];
  if (!valid_seq(c->args[0]))
    return ctl_usage_error(c, "SEQ must be an event's sequence number");
  snprintf(missing, sizeof(missing), "event %s has no dead letter",
           c->args[0]);
  int rc = events_call(c, "POST", c->args[0], "retry", missing, &reply,
                       &err);
  if (rc == 0 && ctl_has(c, CO_JSON)) {
    out_json(reply.json);
  } else if (rc == 0) {
    char *who = out_join(json_object_get(reply.json, "retrying"), ", ", "-");
    printf("event %s: retrying for %s\n", c->args[0], who ? who : "-");
    free(who);
  }
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

/* Exit 1 when the chain is broken, naming the first broken link. */
int cmd_events_verify(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  int rc = events_call(c, "GET", "verify", NULL, NULL, &reply, &err);
  if (rc != 0) {
    ctl_reply_clear(&reply);
    return ctl_fail(&err);
  }
  json_t *r = reply.json;
  int ok = json_is_true(json_object_get(r, "ok"));
  if (ctl_has(c, CO_JSON)) {
    out_json(r);
  } else if (ok) {
    printf("journal ok: %" JSON_INTEGER_FORMAT " events, seq %"
           JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT ", last hash %s\n",
           json_integer_value(json_object_get(r, "events")),
           json_integer_value(json_object_get(r, "firstSeq")),
           json_integer_value(json_object_get(r, "lastSeq")),
           out_str(r, "lastHash", "-"));
  } else {
    fprintf(stderr, "provctl: journal broken at event %" JSON_INTEGER_FORMAT
                    ": %s\n",
            json_integer_value(json_object_get(r, "brokenSeq")),
            out_str(r, "problem", "?"));
  }
  ctl_reply_clear(&reply);
  return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
