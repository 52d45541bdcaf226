/* Notifier cursors (cursors.h). */
#include "notify/cursors.h"
#include <string.h>

#include "util/timefmt.h"

uint64_t notify_cursor_load(struct store_session *s, const char *id)
{
  struct store_rec rec;
  struct provd_err err;
  perr_clear(&err);
  if (store_get(s, PROVD_TABLE_NOTIFIER_CURSORS, id, &rec, &err) != PROVD_OK)
    return 0;
  json_int_t c = json_integer_value(json_object_get(rec.body, "cursor"));
  store_rec_clear(&rec);
  return c > 0 ? (uint64_t)c : 0;
}

int notify_cursor_put(struct store_session *s, void *cursor_write,
                      struct provd_err *err)
{
  const struct cursor_write *c = cursor_write;
  int64_t now = time_now_ms();
  struct store_rec rec = {
      .id = (char *)c->id,
      .body = json_pack("{s:I}", "cursor", (json_int_t)c->cursor),
      .created_ms = now,
      .updated_ms = now,
  };
  if (!rec.body) {
    perr_set(err, "NOMEM", "no memory for a notifier cursor");
    return PROVD_E_NOMEM;
  }
  int rc = store_put(s, PROVD_TABLE_NOTIFIER_CURSORS, &rec, NULL, 0, err);
  json_decref(rec.body);
  return rc;
}

int notify_cursor_lease(struct store_session *s, void *cursor_lease,
                        struct provd_err *err)
{
  struct cursor_lease *l = cursor_lease;
  struct store_rec rec = {0};
  int64_t now = time_now_ms();
  int rc = store_get(s, PROVD_TABLE_NOTIFIER_CURSORS, l->id, &rec, err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
    return rc;
  json_int_t stored = json_integer_value(json_object_get(rec.body, "cursor"));
  const char *owner = json_string_value(json_object_get(rec.body, "owner"));
  json_int_t until =
      json_integer_value(json_object_get(rec.body, "leaseUntilMs"));
  int mine = owner && strcmp(owner, l->owner) == 0;
  l->stored = stored > 0 ? (uint64_t)stored : 0;
  l->held = mine || !owner || until <= now;
  l->taken = l->held && !mine;
  if (!l->held || (!mine && l->lease_ms == 0)) {
    store_rec_clear(&rec);
    l->held = 0;
    return PROVD_OK;
  }
  uint64_t cursor = mine && l->advance ? l->cursor : l->stored;
  struct store_rec out = {
      .id = (char *)l->id,
      .body = json_pack("{s:I,s:s,s:I}", "cursor", (json_int_t)cursor,
                        "owner", l->owner, "leaseUntilMs",
                        (json_int_t)(l->lease_ms ? now + l->lease_ms : 0)),
      .created_ms = rc == PROVD_OK ? rec.created_ms : now,
      .updated_ms = now,
  };
  store_rec_clear(&rec);
  if (!out.body) {
    perr_set(err, "NOMEM", "no memory for a notifier lease");
    return PROVD_E_NOMEM;
  }
  rc = store_put(s, PROVD_TABLE_NOTIFIER_CURSORS, &out, NULL, 0, err);
  json_decref(out.body);
  if (rc == PROVD_OK)
    l->stored = cursor;
  if (l->lease_ms == 0)
    l->held = 0;
  return rc;
}
