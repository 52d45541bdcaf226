/* Renamed config keys (deprecated.h): read under their new name, with a
 * warning, for one minor release. */
#include "config/deprecated.h"

#include <stdlib.h>
#include <string.h>

const struct cfg_rename cfg_core_renames[] = {
    {NULL, NULL, NULL, NULL}};

static int rename_key(struct cfg_node *map, size_t i,
                      const struct cfg_rename *r, struct diag *d)
{
  struct cfg_node *key = map->keys[i];
  if (cfg_map_get(map, r->new_key)) {
    diag_add(d, &key->pos, "'%s' is the deprecated name of '%s', which is "
             "given too; keep only '%s'", key->text, r->new_key, r->new_key);
    return 1;
  }
  diag_add(d, &key->pos, "warning: '%s' is deprecated since provd %s and "
           "is no longer read from provd %s on; call it '%s'", r->old_path,
           r->since, r->removed_in, r->new_key);
  char *renamed = strdup(r->new_key);
  if (!renamed) {
    diag_add(d, &key->pos, "out of memory");
    return 1;
  }
  free(key->text);
  key->text = renamed;
  return 0;
}

/* path: what is left of r->old_path below the mapping m. */
static int rename_in(struct cfg_node *m, const char *path,
                     const struct cfg_rename *r, struct diag *d)
{
  if (!m || m->type != CFG_MAP)
    return 0;
  const char *dot = strchr(path, '.');
  size_t seg = dot ? (size_t)(dot - path) : strlen(path);
  int each = seg > 2 && strncmp(path + seg - 2, "[]", 2) == 0;
  size_t name_len = each ? seg - 2 : seg;
  for (size_t i = 0; i < m->n; i++) {
    const char *k = m->keys[i]->text;
    if (strlen(k) != name_len || strncmp(k, path, name_len) != 0)
      continue;
    struct cfg_node *v = m->items[i];
    if (!dot)
      return rename_key(m, i, r, d);
    if (!each)
      return rename_in(v, dot + 1, r, d);
    int errors = 0;
    for (size_t j = 0; v && v->type == CFG_SEQ && j < v->n; j++)
      errors += rename_in(v->items[j], dot + 1, r, d);
    return errors;
  }
  return 0;
}

int cfg_apply_renames(struct cfg_node *root, const struct cfg_rename *table,
                      struct diag *d)
{
  int errors = 0;
  for (const struct cfg_rename *r = table; r && r->old_path; r++)
    errors += rename_in(root, r->old_path, r, d);
  return errors;
}
