/* What provctl prints: one compact JSON document with --json, else
 * "label: value" lines and space-aligned tables (stable for awk). */
#include "provctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 8
#define MAX_ROWS 1000000
#define MASK "****"

struct out_table {
  size_t n_cols;
  size_t n_rows;
  size_t cap_rows;
  char **cells; /* n_rows * n_cols, row 0 = headers; owned */
  size_t width[MAX_COLS];
};

void out_json(json_t *doc)
{
  char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
  if (text) {
    printf("%s\n", text);
    free(text);
  } else {
    printf("null\n");
  }
}

void out_field(const char *label, const char *value)
{
  char padded[64];
  snprintf(padded, sizeof(padded), "%s:", label);
  printf("%-21s %s\n", padded, value ? value : "-");
}

void out_field_json(const char *label, json_t *value)
{
  if (json_is_string(value)) {
    out_field(label, json_string_value(value));
    return;
  }
  char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
  out_field(label, text ? text : "-");
  free(text);
}

const char *out_str(json_t *obj, const char *key, const char *fallback)
{
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) && json_string_length(v) > 0
             ? json_string_value(v) : fallback;
}

static int table_add(struct out_table *t, const char *const *cells)
{
  if (t->n_rows >= MAX_ROWS)
    return -1;
  if (t->n_rows == t->cap_rows) {
    size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
    char **grown = realloc(t->cells, cap * t->n_cols * sizeof(char *));
    if (!grown)
      return -1;
    t->cells = grown;
    t->cap_rows = cap;
  }
  for (size_t i = 0; i < t->n_cols; i++) {
    const char *v = cells[i] && cells[i][0] ? cells[i] : "-";
    char *copy = strdup(v);
    t->cells[t->n_rows * t->n_cols + i] = copy;
    size_t len = copy ? strlen(copy) : 0;
    if (len > t->width[i])
      t->width[i] = len;
  }
  t->n_rows++;
  return 0;
}

struct out_table *out_table_new(size_t n_cols, const char *const *headers)
{
  if (n_cols == 0 || n_cols > MAX_COLS)
    return NULL;
  struct out_table *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  t->n_cols = n_cols;
  if (table_add(t, headers) != 0) {
    free(t);
    return NULL;
  }
  return t;
}

void out_table_row(struct out_table *t, const char *const *cells)
{
  if (t)
    table_add(t, cells);
}

void out_table_print_free(struct out_table *t)
{
  if (!t)
    return;
  for (size_t r = 0; r < t->n_rows; r++) {
    for (size_t i = 0; i < t->n_cols; i++) {
      const char *v = t->cells[r * t->n_cols + i];
      if (i + 1 < t->n_cols)
        printf("%-*s  ", (int)t->width[i], v ? v : "-");
      else
        printf("%s\n", v ? v : "-");
    }
  }
  for (size_t k = 0; k < t->n_rows * t->n_cols; k++)
    free(t->cells[k]);
  free(t->cells);
  free(t);
}

void out_mask_keys(json_t *attestation)
{
  json_t *sym = json_object_get(attestation, "symmetricKey");
  const char *names[] = { "primaryKey", "secondaryKey" };
  for (size_t i = 0; i < 2; i++) {
    if (json_is_string(json_object_get(sym, names[i])))
      json_object_set_new(sym, names[i], json_string(MASK));
  }
}

char *out_join(json_t *array, const char *sep, const char *fallback)
{
  size_t i, len = 1;
  json_t *v;
  if (!json_is_array(array) || json_array_size(array) == 0)
    return strdup(fallback);
  json_array_foreach(array, i, v) {
    if (json_is_string(v))
      len += json_string_length(v) + strlen(sep);
  }
  char *out = calloc(1, len);
  if (!out)
    return NULL;
  size_t used = 0;
  json_array_foreach(array, i, v) {
    if (!json_is_string(v))
      continue;
    int w = snprintf(out + used, len - used, "%s%s", used ? sep : "",
                     json_string_value(v));
    if (w > 0)
      used += (size_t)w;
  }
  return out;
}
