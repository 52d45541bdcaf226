/* Private to core/config: the YAML node tree with positions, and helpers
 * shared by the core schema check (config.c) and the plugin option check
 * (options.c). */
#ifndef CORE_CONFIG_TREE_H
#define CORE_CONFIG_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Input limits: a config is small; anything bigger is a mistake. */
#define CFG_MAX_FILE (1024 * 1024)  /* bytes of YAML */
#define CFG_MAX_NODES 100000        /* nodes in one file */
#define CFG_MAX_DEPTH 64            /* nesting of collections */
#define CFG_MAX_ITEMS 10000         /* entries of one collection */
#define CFG_MAX_SCALAR (64 * 1024)  /* bytes of one scalar, after ${} */
#define CFG_MAX_SECRET_FILE (64 * 1024)

enum cfg_type { CFG_SCALAR, CFG_SEQ, CFG_MAP };

struct cfg_node {
  enum cfg_type type;
  struct cfg_pos pos;
  /* CFG_SCALAR: text after ${NAME} expansion, NUL-terminated. */
  char *text;
  int is_null; /* plain "", "~", "null" */
  int quoted;  /* quoted, block or !!str: never a number/bool/null */
  int bad;     /* already reported (e.g. unset ${VAR}): check no further */
  /* CFG_SEQ: items.  CFG_MAP: keys[i] (scalars) -> items[i]. */
  struct cfg_node **keys;
  struct cfg_node **items;
  size_t n;
};

/* Parses YAML text (one document at most) into a tree.  file is borrowed
 * and must outlive the tree.  *root is NULL for an empty document.
 * Returns -1 (and no tree) when parsing stopped: syntax error or a limit.
 * Otherwise returns the number of problems that did not stop it
 * (duplicate keys, unset environment variables...), each in d; the
 * offending scalars are flagged `bad` so later checks stay quiet. */
int cfg_tree_parse(const char *text, size_t len, const char *file,
                   struct cfg_node **root, struct diag *d);
void cfg_tree_free(struct cfg_node *n);
/* 1 when both trees say the same (positions aside; absent == null). */
int cfg_tree_equal(const struct cfg_node *a, const struct cfg_node *b);

/* Value of `key` in mapping m, or NULL (also when m is not a mapping). */
const struct cfg_node *cfg_map_get(const struct cfg_node *m, const char *key);
/* NULL or a null scalar: the key counts as not given. */
int cfg_is_absent(const struct cfg_node *n);
/* "a mapping", "a sequence", "a string", "null" (for messages). */
const char *cfg_type_desc(const struct cfg_node *n);

/* ---- helpers (values.c) ---- */

/* Closest candidate to `word` (edit distance <= 2, or one is a prefix of
 * the other), or NULL.  candidates is NULL-ended. */
const char *cfg_hint(const char *word, const char *const *candidates);
/* Writes " (did you mean 'x'?)" or "" into buf. */
const char *cfg_hint_text(const char *word, const char *const *candidates,
                          char *buf, size_t len);

/* Whole-string parsers; -1 when the text is not of the form. */
int cfg_parse_int(const char *text, long long *out);
int cfg_parse_bool(const char *text, int *out);
int cfg_parse_double(const char *text, double *out);
int cfg_parse_duration_ms(const char *text, long long *out);
int cfg_parse_size(const char *text, unsigned long long *out);
/* 1 when text is standard padded base64 of 1..512 bytes. */
int cfg_base64_ok(const char *text);
/* Decoded length of a base64 key; 0 when it is not valid base64. */
size_t cfg_base64_len(const char *text);

/* Reads a small file into a new NUL-terminated string with one trailing
 * newline ("\n" or "\r\n") removed.  Caller frees.  On failure returns
 * NULL with a reason in msg. */
char *cfg_read_small_file(const char *path, size_t max, char *msg,
                          size_t msg_len);

/* strdup that the caller frees; NULL in, NULL out. */
char *cfg_strdup(const char *s);

#endif
