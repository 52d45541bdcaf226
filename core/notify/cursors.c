/* Notifier cursors (cursors.h). */
#include "notify/cursors.h"
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
