/* provctl enrollment import FILE.csv: the manufacturer's hand-over, as
 * the console's Import page does it.  Rows go through the bulk operation
 * (POST /enrollments, mode create) in batches of the service's limit; a
 * batch refused as a whole (one invalid row) is retried row by row so
 * every refused row gets its own reason.  Keys left empty are generated
 * here, so the created ids and keys can be printed as CSV. */
#include "provctl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "util/b64.h"

#define IMPORT_BATCH 10          /* the bulk operation's item limit */
#define IMPORT_MAX_FILE (16 << 20)
#define IMPORT_MAX_ROWS 100000
#define IMPORT_MAX_COLS 16
#define IMPORT_CELL_MAX 4096
#define IMPORT_KEY_BYTES 64

/* The columns a row may have; without a header row they come in this
 * order. */
enum import_col {
  COL_REGID, COL_PRIMARY, COL_SECONDARY, COL_DEVICE_ID, COL_HUBS, COL_TAGS,
  COL_COUNT_
};
static const char *const COLUMN_NAMES[COL_COUNT_] = {
    "registrationId", "primaryKey", "secondaryKey", "deviceId", "iotHubs",
    "tags"};

struct import_row {
  long line;
  char *cell[COL_COUNT_]; /* owned; NULL when absent */
  json_t *doc;            /* the enrollment; owned */
  char *reason;           /* NULL: created; owned */
};

struct csv_reader {
  const char *p, *end;
  long line;
};

/* One RFC 4180 field into *out (caller frees); 1 when the row ends after
 * it, 0 when another field follows, -1 on a field that is too long. */
static int csv_field(struct csv_reader *r, char **out)
{
  char buf[IMPORT_CELL_MAX];
  size_t n = 0;
  int quoted = 0;
  for (; r->p < r->end; r->p++) {
    char ch = *r->p;
    if (quoted && ch == '"' && r->p + 1 < r->end && r->p[1] == '"') {
      r->p++;
    } else if (ch == '"' && (quoted || n == 0)) {
      quoted = !quoted;
      continue;
    } else if (!quoted && (ch == ',' || ch == '\n' || ch == '\r')) {
      break;
    }
    if (ch == '\n')
      r->line++;
    if (n + 1 >= sizeof(buf))
      return -1;
    buf[n++] = ch;
  }
  buf[n] = '\0';
  *out = strdup(buf);
  if (r->p >= r->end)
    return 1;
  char sep = *r->p++;
  if (sep == '\r' && r->p < r->end && *r->p == '\n')
    r->p++;
  if (sep != ',')
    r->line++;
  return sep == ',' ? 0 : 1;
}

static char *trimmed(char *s)
{
  char *start = s;
  while (isspace((unsigned char)*start))
    start++;
  size_t n = strlen(start);
  while (n && isspace((unsigned char)start[n - 1]))
    start[--n] = '\0';
  memmove(s, start, n + 1);
  return s;
}

/* Reads one CSV row; returns its number of fields (0 at the end),
 * -1 when a field is too long or there are too many. */
static int csv_row(struct csv_reader *r, char *cells[IMPORT_MAX_COLS])
{
  int n = 0;
  if (r->p >= r->end)
    return 0;
  for (;;) {
    char *cell = NULL;
    int last = csv_field(r, &cell);
    if (last < 0 || !cell || n >= IMPORT_MAX_COLS) {
      free(cell);
      for (int i = 0; i < n; i++)
        free(cells[i]);
      return -1;
    }
    cells[n++] = trimmed(cell);
    if (last)
      return n;
  }
}

static int header_column(const char *name)
{
  for (int i = 0; i < COL_COUNT_; i++)
    if (strcasecmp(name, COLUMN_NAMES[i]) == 0)
      return i;
  return -1;
}

static char *new_key(void)
{
  unsigned char raw[IMPORT_KEY_BYTES];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return NULL;
  return b64_encode(raw, sizeof(raw));
}

/* "k=v;k=v" as an object; NULL when a pair has no '='. */
static json_t *tags_object(const char *text)
{
  json_t *tags = json_object();
  char *copy = strdup(text);
  char *save = NULL;
  for (char *pair = strtok_r(copy, ";", &save); tags && pair;
       pair = strtok_r(NULL, ";", &save)) {
    char *eq = strchr(pair, '=');
    if (!eq || eq == pair) {
      json_decref(tags);
      tags = NULL;
      break;
    }
    *eq = '\0';
    json_object_set_new(tags, trimmed(pair), json_string(trimmed(eq + 1)));
  }
  free(copy);
  return tags;
}

/* Fills the row's keys and builds its enrollment; sets row->reason when
 * the row cannot become one. */
static void row_document(struct import_row *row)
{
  for (int k = COL_PRIMARY; k <= COL_SECONDARY; k++) {
    if (!row->cell[k] || !row->cell[k][0]) {
      free(row->cell[k]);
      row->cell[k] = new_key();
    }
  }
  const char *id = row->cell[COL_REGID] ? row->cell[COL_REGID] : "";
  row->doc = json_pack("{s:s,s:{s:s,s:{s:s?,s:s?}}}", "registrationId", id,
                       "attestation", "type", "symmetricKey", "symmetricKey",
                       "primaryKey", row->cell[COL_PRIMARY], "secondaryKey",
                       row->cell[COL_SECONDARY]);
  const char *dev = row->cell[COL_DEVICE_ID];
  if (row->doc && dev && dev[0])
    json_object_set_new(row->doc, "deviceId", json_string(dev));
  const char *hubs = row->cell[COL_HUBS];
  if (row->doc && hubs && hubs[0]) {
    json_t *list = json_array();
    char *copy = strdup(hubs);
    char *save = NULL;
    for (char *h = strtok_r(copy, "; ", &save); h; h = strtok_r(NULL, "; ", &save))
      json_array_append_new(list, json_string(h));
    free(copy);
    json_object_set_new(row->doc, "iotHubs", list);
  }
  const char *tags = row->cell[COL_TAGS];
  if (row->doc && tags && tags[0]) {
    json_t *t = tags_object(tags);
    if (!t)
      row->reason = strdup("tags must be key=value pairs separated by ';'");
    else
      json_object_set_new(row->doc, "initialTwin", json_pack("{s:o}", "tags", t));
  }
  if (!row->doc && !row->reason)
    row->reason = strdup("out of memory");
}

struct import_file {
  struct import_row *rows;
  size_t n;
};

static void import_file_free(struct import_file *f)
{
  for (size_t i = 0; i < f->n; i++) {
    for (int k = 0; k < COL_COUNT_; k++)
      free(f->rows[i].cell[k]);
    json_decref(f->rows[i].doc);
    free(f->rows[i].reason);
  }
  free(f->rows);
}

/* Parses the CSV text into rows (header row optional). */
static int import_parse(const char *text, size_t len, struct import_file *f,
                        struct provd_err *err)
{
  struct csv_reader r = {text, text + len, 1};
  int map[IMPORT_MAX_COLS];
  for (int i = 0; i < IMPORT_MAX_COLS; i++)
    map[i] = i < COL_COUNT_ ? i : -1;
  int first = 1;
  for (;;) {
    char *cells[IMPORT_MAX_COLS];
    long line = r.line;
    int n = csv_row(&r, cells);
    if (n == 0)
      return 0;
    if (n < 0)
      return perr_set(err, "BAD_INPUT", "line %ld: a field over %d bytes or "
                      "more than %d fields", line, IMPORT_CELL_MAX,
                      IMPORT_MAX_COLS), -1;
    int blank = 1;
    for (int i = 0; i < n; i++)
      blank &= cells[i][0] == '\0';
    int header = first && header_column(cells[0]) == COL_REGID;
    for (int i = 0; header && i < IMPORT_MAX_COLS; i++)
      map[i] = i < n ? header_column(cells[i]) : -1;
    first = 0;
    if (!header && !blank && f->n >= IMPORT_MAX_ROWS) {
      for (int i = 0; i < n; i++)
        free(cells[i]);
      return perr_set(err, "BAD_INPUT", "more than %d rows",
                      IMPORT_MAX_ROWS), -1;
    }
    if (!header && !blank) {
      struct import_row *grown = realloc(f->rows, (f->n + 1) * sizeof(*grown));
      if (!grown)
        return perr_set(err, "BAD_INPUT", "out of memory"), -1;
      f->rows = grown;
      struct import_row *row = memset(&f->rows[f->n++], 0, sizeof(*row));
      row->line = line;
      for (int i = 0; i < n; i++) {
        if (map[i] >= 0 && !row->cell[map[i]]) {
          row->cell[map[i]] = cells[i];
          cells[i] = NULL;
        }
      }
    }
    for (int i = 0; i < n; i++)
      free(cells[i]);
  }
}

/* The per-item answer of a bulk create for this id, or NULL. */
static const json_t *bulk_error_for(const json_t *result, const char *id)
{
  size_t i;
  const json_t *e;
  json_array_foreach(json_object_get(result, "errors"), i, e) {
    const char *eid = json_string_value(json_object_get(e, "registrationId"));
    if (eid && strcasecmp(eid, id) == 0)
      return e;
  }
  return NULL;
}

static char *item_reason(const json_t *e)
{
  json_int_t code = json_integer_value(json_object_get(e, "errorCode"));
  const char *text = json_string_value(json_object_get(e, "errorStatus"));
  char buf[512];
  if (code == 409001)
    snprintf(buf, sizeof(buf), "already exists");
  else
    snprintf(buf, sizeof(buf), "%s (%lld)", text ? text : "refused",
             (long long)code);
  return strdup(buf);
}

/* Creates rows[0..n) in one bulk request; a request refused as a whole
 * is retried one row at a time. */
static void import_batch(struct ctl *c, struct import_row *rows, size_t n)
{
  char path[128];
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append(list, rows[i].doc);
  json_t *body = json_pack("{s:s,s:o}", "mode", "create", "enrollments", list);
  struct ctl_reply reply = {0};
  struct provd_err err;
  perr_clear(&err);
  ctl_path(path, sizeof(path), "enrollments", NULL, NULL, NULL);
  int rc = ctl_call(c, "POST", path, body, NULL, 0, &reply, &err);
  json_decref(body);
  if (rc != 0 && reply.status == 400 && n > 1) {
    ctl_reply_clear(&reply);
    for (size_t i = 0; i < n; i++)
      import_batch(c, &rows[i], 1);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const char *id = json_string_value(json_object_get(rows[i].doc,
                                                       "registrationId"));
    const json_t *e = rc == 0 ? bulk_error_for(reply.json, id) : NULL;
    if (rc != 0)
      rows[i].reason = strdup(err.msg[0] ? err.msg : err.code);
    else if (e)
      rows[i].reason = item_reason(e);
  }
  ctl_reply_clear(&reply);
}

static void csv_out(FILE *out, const char *v)
{
  if (!strpbrk(v, ",\"\r\n")) {
    fputs(v, out);
    return;
  }
  fputc('"', out);
  for (; *v; v++) {
    if (*v == '"')
      fputc('"', out);
    fputc(*v, out);
  }
  fputc('"', out);
}

static void print_created_csv(const struct import_file *f)
{
  printf("registrationId,primaryKey,secondaryKey,deviceId\n");
  for (size_t i = 0; i < f->n; i++) {
    const struct import_row *r = &f->rows[i];
    if (r->reason)
      continue;
    const char *cols[] = {r->cell[COL_REGID], r->cell[COL_PRIMARY],
                          r->cell[COL_SECONDARY], r->cell[COL_DEVICE_ID]};
    for (size_t k = 0; k < 4; k++) {
      if (k)
        putchar(',');
      csv_out(stdout, cols[k] ? cols[k] : "");
    }
    putchar('\n');
  }
}

static void print_json(const struct import_file *f)
{
  json_t *all = json_array();
  for (size_t i = 0; i < f->n; i++) {
    const struct import_row *r = &f->rows[i];
    json_t *o = json_pack("{s:I,s:s,s:b}", "line", (json_int_t)r->line,
                          "registrationId",
                          r->cell[COL_REGID] ? r->cell[COL_REGID] : "",
                          "created", r->reason == NULL);
    if (r->reason)
      json_object_set_new(o, "reason", json_string(r->reason));
    else
      json_object_set(o, "attestation", json_object_get(r->doc, "attestation"));
    json_array_append_new(all, o);
  }
  out_json(all);
  json_decref(all);
}

static void progress(size_t done, size_t total, int final)
{
  fprintf(stderr, "\rimport: %zu of %zu rows%s", done, total,
          final ? "\n" : "");
  fflush(stderr);
}

int cmd_enrollment_import(struct ctl *c)
{
  char *text = calloc(1, IMPORT_MAX_FILE + 1);
  FILE *in = text ? fopen(c->args[0], "rb") : NULL;
  size_t len = in ? fread(text, 1, IMPORT_MAX_FILE + 1, in) : 0;
  int bad = !in || ferror(in) || len > IMPORT_MAX_FILE;
  if (in)
    fclose(in);
  if (bad) {
    free(text);
    return ctl_usage_error(c, "%s: cannot read it, or it is larger than "
                           "16 MiB", c->args[0]);
  }
  struct import_file f = {0};
  struct provd_err err;
  perr_clear(&err);
  int rc = import_parse(text, len, &f, &err);
  free(text);
  if (rc != 0) {
    import_file_free(&f);
    return ctl_fail(&err);
  }
  struct import_row **todo = calloc(f.n + 1, sizeof(*todo));
  size_t n_todo = 0;
  for (size_t i = 0; i < f.n; i++) {
    row_document(&f.rows[i]);
    if (!f.rows[i].reason)
      todo[n_todo++] = &f.rows[i];
  }
  /* Batches of rows that are adjacent in the file (the others are
   * already refused). */
  size_t done = f.n - n_todo;
  for (size_t i = 0; i < n_todo;) {
    size_t n = 1;
    while (n < IMPORT_BATCH && i + n < n_todo && todo[i + n] == todo[i] + n)
      n++;
    import_batch(c, todo[i], n);
    i += n;
    done += n;
    progress(done, f.n, 0);
  }
  free(todo);
  size_t refused = 0;
  for (size_t i = 0; i < f.n; i++)
    refused += f.rows[i].reason != NULL;
  progress(f.n, f.n, 1);
  for (size_t i = 0; i < f.n; i++) {
    const struct import_row *r = &f.rows[i];
    if (r->reason)
      fprintf(stderr, "line %ld %s: refused: %s\n", r->line,
              r->cell[COL_REGID] ? r->cell[COL_REGID] : "", r->reason);
  }
  fprintf(stderr, "import: %zu created, %zu refused\n", f.n - refused,
          refused);
  if (ctl_has(c, CO_JSON))
    print_json(&f);
  else
    print_created_csv(&f);
  import_file_free(&f);
  return refused ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}
