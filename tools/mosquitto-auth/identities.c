/* The identities file (identities.h). */
#include "identities.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define MAX_IDENTS 1000000

static int by_device(const void *a, const void *b)
{
  return strcmp(((const struct ident *)a)->device_id,
                ((const struct ident *)b)->device_id);
}

static void field(char *dst, const char *src)
{
  snprintf(dst, IDENT_FIELD_MAX, "%s", strcmp(src, "-") == 0 ? "" : src);
}

static int parse_line(char *line, struct ident *out)
{
  char *f[5], *save = NULL;
  size_t n = 0;
  for (char *tok = strtok_r(line, "\t\r\n", &save); tok && n < 5;
       tok = strtok_r(NULL, "\t\r\n", &save))
    f[n++] = tok;
  if (n != 5)
    return -1;
  for (size_t i = 0; i < 5; i++)
    if (strlen(f[i]) >= IDENT_FIELD_MAX)
      return -1;
  field(out->device_id, f[0]);
  field(out->hub, f[2]);
  field(out->key_b64, f[3]);
  field(out->thumbprint, f[4]);
  return out->device_id[0] ? 0 : -1;
}

int ident_table_load(const char *path, struct ident_table *out)
{
  memset(out, 0, sizeof(*out));
  FILE *f = fopen(path, "r");
  if (!f)
    return errno == ENOENT ? 0 : -1;
  size_t cap = 0;
  char line[5 * IDENT_FIELD_MAX + 8];
  int rc = 0;
  while (fgets(line, sizeof(line), f)) {
    if (line[0] == '#' || line[0] == '\n')
      continue;
    if (out->n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      struct ident *items = ncap <= MAX_IDENTS
                                ? realloc(out->items, ncap * sizeof(*items))
                                : NULL;
      if (!items) {
        rc = -1;
        errno = ENOMEM;
        break;
      }
      out->items = items;
      cap = ncap;
    }
    if (parse_line(line, &out->items[out->n]) == 0)
      out->n++;
  }
  OPENSSL_cleanse(line, sizeof(line));
  fclose(f);
  if (rc != 0) {
    ident_table_free(out);
    return -1;
  }
  if (out->n > 1)
    qsort(out->items, out->n, sizeof(*out->items), by_device);
  return 0;
}

void ident_table_free(struct ident_table *t)
{
  if (t->items)
    OPENSSL_cleanse(t->items, t->n * sizeof(*t->items));
  free(t->items);
  memset(t, 0, sizeof(*t));
}

const struct ident *ident_find(const struct ident_table *t,
                               const char *device_id)
{
  struct ident key;
  if (!t->n || strlen(device_id) >= sizeof(key.device_id))
    return NULL;
  snprintf(key.device_id, sizeof(key.device_id), "%s", device_id);
  return bsearch(&key, t->items, t->n, sizeof(*t->items), by_device);
}

int ident_same(const struct ident *a, const struct ident *b)
{
  return strcmp(a->hub, b->hub) == 0 && strcmp(a->key_b64, b->key_b64) == 0 &&
         strcmp(a->thumbprint, b->thumbprint) == 0;
}
