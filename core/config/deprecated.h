/* Renamed config keys.  When a minor release renames a core key, the old
 * spelling keeps working for one more minor release: it is read as the
 * new key, with a warning naming both and the release that drops it
 * (docs/upgrading.md).  Private to core/config. */
#ifndef CORE_CONFIG_DEPRECATED_H
#define CORE_CONFIG_DEPRECATED_H

#include "config/tree.h"

struct cfg_rename {
  /* Dotted path of the old key; "name[]" steps into every item of a
   * list: "limits.max_body", "hubs[].apply_policy". */
  const char *old_path;
  const char *new_key;    /* its new name, in the same mapping */
  const char *since;      /* the release that deprecated it: "0.2" */
  const char *removed_in; /* the release that no longer reads it: "0.3" */
};

/* The core's renames, ended by a NULL old_path.  Empty until a release
 * renames a key. */
extern const struct cfg_rename cfg_core_renames[];

/* Renames every old key of `table` found in root to its new name, adding
 * a "warning: ..." line to d for each; a mapping that holds both names is
 * an error.  Returns the number of errors. */
int cfg_apply_renames(struct cfg_node *root, const struct cfg_rename *table,
                      struct diag *d);

#endif
