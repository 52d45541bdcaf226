/* Every core configuration key provd accepts is documented in
 * docs/configuration.md, and the doc names no key provd rejects.
 *
 * core_keys[] below lists the core schema.  Three checks keep it honest:
 *  - it equals the key tables in core/config/config.c (`top_keys[]` and
 *    each function's `struct key_rule rules[]`), read as text, so adding
 *    a key there fails here until it is listed and documented;
 *  - config_load() accepts each listed key and rejects it misspelled, so
 *    the list is the schema provd really applies;
 *  - the doc has each key in the first column of the right table: top
 *    level keys and nested mapping keys (`listen.https`) in "## Core keys",
 *    keys of list items (`weight`) under "### `hubs` items"; and those
 *    first columns name no other key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define MAX_KEYS 16
#define MAX_TABLES 32
#define MAX_FILE_BYTES (1024 * 1024)
#define NAME_LEN 64

enum shape {
  TOP, /* top-level keys */
  MAP, /* keys of a mapping: `parent.key` in "## Core keys" */
  SEQ  /* keys of list items: `key` under "### `parent` items" */
};

struct key_group {
  const char *table;  /* config.c: "top_keys" or the function with `rules` */
  const char *parent; /* NULL for TOP */
  enum shape shape;
  const char *keys[MAX_KEYS]; /* NULL-ended */
};

static const struct key_group core_keys[] = {
    {"top_keys", NULL, TOP,
     {"id_scope", "listen", "data_dir", "tls", "storage", "plugin_path",
      "workers", "log_level", "limits", "registration", "events",
      "service_policies", "certificate_issuers", "hubs", "plugins", NULL}},
    {"do_listen", "listen", MAP, {"https", "mqtt", "console", NULL}},
    {"do_tls", "tls", MAP, {"cert", "key", NULL}},
    {"do_storage", "storage", MAP,
     {"plugin", "path", "options", "commit_window", NULL}},
    {"do_limits", "limits", MAP,
     {"max_body", "max_connections", "max_handshakes", "handshake_timeout",
      "max_connections_per_source", "retry_after_max",
      "register_rate_per_device", "register_rate_per_source",
      "max_service_token_lifetime", "first_boot_max_wait", NULL}},
    {"do_registration", "registration", MAP,
     {"retry_after", "allocation_policy", NULL}},
    {"do_events", "events", MAP,
     {"retry_initial", "retry_max", "max_age", "concurrency", "queue", "poll",
      "retain_age", "retain_count", NULL}},
    {"do_policy", "service_policies", SEQ,
     {"name", "key", "key_file", "access", "permissions", NULL}},
    {"do_issuer", "certificate_issuers", SEQ,
     {"name", "cert", "key_file", "validity_days", "csr_key", NULL}},
    {"do_hub", "hubs", SEQ,
     {"name", "hostname", "weight", "apply_allocation_policy", NULL}},
    {"do_plugin", "plugins", SEQ,
     {"kind", "name", "id", "path", "events", "options", NULL}},
};
#define N_GROUPS (sizeof(core_keys) / sizeof(core_keys[0]))

static const char core_heading[] = "## Core keys";

/* ---- reading files ---- */

/* Whole file, NUL-terminated; caller frees. */
static char *slurp(const char *rel)
{
  const char *src = getenv("PROVD_SOURCE_DIR");
  ck_assert_msg(src != NULL, "PROVD_SOURCE_DIR is not set");
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", src, rel);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  char *buf = malloc(MAX_FILE_BYTES + 1);
  ck_assert_ptr_nonnull(buf);
  size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
  fclose(f);
  ck_assert_msg(n <= MAX_FILE_BYTES, "%s is larger than %d bytes", path,
                MAX_FILE_BYTES);
  buf[n] = '\0';
  return buf;
}

/* Next line of *cursor (split in place), or NULL at the end. */
static char *next_line(char **cursor)
{
  char *line = *cursor;
  if (!line || !*line)
    return NULL;
  char *nl = strchr(line, '\n');
  if (nl) {
    *nl = '\0';
    *cursor = nl + 1;
  } else {
    *cursor = line + strlen(line);
  }
  return line;
}

/* ---- config.c's key tables, read as text ---- */

struct src_table {
  char name[NAME_LEN];
  char keys[MAX_KEYS][NAME_LEN];
  size_t n;
};

/* Copies the string literals of line into t (only the first one when
 * first_only). */
static void collect_literals(const char *line, int first_only,
                             struct src_table *t)
{
  const char *p = line;
  while ((p = strchr(p, '"')) != NULL) {
    const char *end = strchr(p + 1, '"');
    if (!end)
      return;
    ck_assert_msg(t->n < MAX_KEYS, "config.c: table %s has more than %d "
                  "keys", t->name, MAX_KEYS);
    snprintf(t->keys[t->n++], NAME_LEN, "%.*s", (int)(end - p - 1), p + 1);
    if (first_only)
      return;
    p = end + 1;
  }
}

/* "static void do_hub(struct ck *c, ..." -> "do_hub" */
static int function_name(const char *line, char *out, size_t cap)
{
  if (strncmp(line, "static ", 7))
    return -1;
  const char *paren = strchr(line, '(');
  if (!paren || strchr(line, '=') != NULL)
    return -1;
  const char *start = paren;
  while (start > line && (start[-1] == '_' || (start[-1] >= 'a' &&
         start[-1] <= 'z') || (start[-1] >= '0' && start[-1] <= '9')))
    start--;
  if (start == paren)
    return -1;
  snprintf(out, cap, "%.*s", (int)(paren - start), start);
  return 0;
}

static size_t scan_config_c(struct src_table *tables)
{
  char *text = slurp("core/config/config.c"), *cursor = text, *line;
  char func[NAME_LEN] = "";
  size_t n = 0;
  struct src_table *cur = NULL;
  int top = 0;
  while ((line = next_line(&cursor)) != NULL) {
    if (cur) {
      collect_literals(line, top, cur);
      if ((!top && strstr(line, "{0}}")) || (top && !strncmp(line, "};", 2)))
        cur = NULL;
      continue;
    }
    function_name(line, func, sizeof(func));
    int rules = strstr(line, "struct key_rule rules[] = {") != NULL;
    top = strstr(line, "top_keys[] = {") != NULL;
    if (!rules && !top)
      continue;
    ck_assert_msg(n < MAX_TABLES, "config.c: more than %d key tables",
                  MAX_TABLES);
    cur = &tables[n++];
    memset(cur, 0, sizeof(*cur));
    snprintf(cur->name, sizeof(cur->name), "%s", top ? "top_keys" : func);
    if (rules)
      collect_literals(strchr(line, '{'), 0, cur);
    if (rules && strstr(line, "{0}}"))
      cur = NULL;
  }
  free(text);
  return n;
}

static const struct key_group *group_of_table(const char *table)
{
  for (size_t g = 0; g < N_GROUPS; g++)
    if (!strcmp(core_keys[g].table, table))
      return &core_keys[g];
  return NULL;
}

static int group_has(const struct key_group *g, const char *key)
{
  for (size_t i = 0; g->keys[i]; i++)
    if (!strcmp(g->keys[i], key))
      return 1;
  return 0;
}

static size_t group_size(const struct key_group *g)
{
  size_t n = 0;
  while (g->keys[n])
    n++;
  return n;
}

START_TEST(t_list_matches_config_c)
{
  static struct src_table tables[MAX_TABLES];
  size_t n = scan_config_c(tables);
  ck_assert_msg(n == N_GROUPS, "config.c has %zu key tables, core_keys[] "
                "here lists %zu: update core_keys[] and docs/configuration.md",
                n, N_GROUPS);
  for (size_t t = 0; t < n; t++) {
    const struct key_group *g = group_of_table(tables[t].name);
    ck_assert_msg(g != NULL, "config.c: key table in %s() is not in "
                  "core_keys[]: add it here and document its keys in "
                  "docs/configuration.md", tables[t].name);
    for (size_t k = 0; k < tables[t].n; k++)
      ck_assert_msg(group_has(g, tables[t].keys[k]),
                    "config.c: key '%s' of %s() is not in core_keys[]: add "
                    "it here and document it in docs/configuration.md",
                    tables[t].keys[k], tables[t].name);
    ck_assert_msg(tables[t].n == group_size(g),
                  "config.c: %s() has %zu keys, core_keys[] lists %zu",
                  tables[t].name, tables[t].n, group_size(g));
  }
}
END_TEST

/* ---- the schema config_load() applies ---- */

/* Loads `yaml`; returns the diagnostics (caller frees with diag_free). */
static struct diag load_text(const char *yaml)
{
  char path[] = "/tmp/test_config_docs_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  size_t len = strlen(yaml);
  ck_assert_int_eq(write(fd, yaml, len), (ssize_t)len);
  close(fd);
  struct provd_config cfg;
  struct diag d = {0};
  if (config_load(path, &cfg, &d) == 0)
    config_free(&cfg);
  unlink(path);
  return d;
}

/* YAML that sets only `key` (to null) where group g puts it. */
static void key_yaml(const struct key_group *g, const char *key, char *out,
                     size_t cap)
{
  if (g->shape == TOP)
    snprintf(out, cap, "%s: ~\n", key);
  else if (g->shape == MAP)
    snprintf(out, cap, "%s: { %s: ~ }\n", g->parent, key);
  else
    snprintf(out, cap, "%s: [ { %s: ~ } ]\n", g->parent, key);
}

/* The diagnostic that calls `key` unknown, or NULL. */
static const char *unknown_diag(const struct diag *d, const char *key)
{
  char quoted[NAME_LEN + 8];
  snprintf(quoted, sizeof(quoted), "'%s'", key);
  for (size_t i = 0; i < d->n; i++)
    if (strstr(d->lines[i], "unknown") && strstr(d->lines[i], quoted))
      return d->lines[i];
  return NULL;
}

START_TEST(t_list_is_the_schema)
{
  const struct key_group *g = &core_keys[_i];
  for (size_t k = 0; g->keys[k]; k++) {
    char yaml[256], typo[NAME_LEN];
    key_yaml(g, g->keys[k], yaml, sizeof(yaml));
    struct diag d = load_text(yaml);
    const char *bad = unknown_diag(&d, g->keys[k]);
    ck_assert_msg(bad == NULL, "config_load rejects listed key: %s", bad);
    diag_free(&d);

    snprintf(typo, sizeof(typo), "%sx", g->keys[k]);
    key_yaml(g, typo, yaml, sizeof(yaml));
    d = load_text(yaml);
    ck_assert_msg(unknown_diag(&d, typo) != NULL,
                  "config_load accepts the misspelled key '%s' in: %s", typo,
                  yaml);
    diag_free(&d);
  }
}
END_TEST

/* ---- docs/configuration.md ---- */

struct doc_key {
  char heading[128];
  char key[NAME_LEN * 2];
};

struct doc_keys {
  struct doc_key items[512];
  size_t n;
};

/* Adds every `token` of a table row's first cell under `heading`. */
static void add_first_cell(struct doc_keys *dk, const char *heading,
                           const char *row)
{
  const char *p = strchr(row, '|');
  const char *end = p ? strchr(p + 1, '|') : NULL;
  if (!end)
    return;
  for (p = p + 1; p < end && (p = memchr(p, '`', (size_t)(end - p)));) {
    const char *close = memchr(p + 1, '`', (size_t)(end - p - 1));
    if (!close)
      return;
    ck_assert_msg(dk->n < sizeof(dk->items) / sizeof(dk->items[0]),
                  "docs/configuration.md: too many table rows");
    struct doc_key *k = &dk->items[dk->n++];
    snprintf(k->heading, sizeof(k->heading), "%s", heading);
    snprintf(k->key, sizeof(k->key), "%.*s", (int)(close - p - 1), p + 1);
    p = close + 1;
  }
}

static void read_doc(struct doc_keys *dk)
{
  char *text = slurp("docs/configuration.md"), *cursor = text, *line;
  char heading[128] = "";
  int fenced = 0;
  dk->n = 0;
  while ((line = next_line(&cursor)) != NULL) {
    if (!strncmp(line, "```", 3))
      fenced = !fenced;
    else if (fenced)
      continue;
    else if (line[0] == '#')
      snprintf(heading, sizeof(heading), "%s", line);
    else if (line[0] == '|')
      add_first_cell(dk, heading, line);
  }
  free(text);
}

static int doc_has(const struct doc_keys *dk, const char *heading,
                   const char *key)
{
  for (size_t i = 0; i < dk->n; i++)
    if (!strcmp(dk->items[i].heading, heading) &&
        !strcmp(dk->items[i].key, key))
      return 1;
  return 0;
}

static int is_map_parent(const char *key)
{
  for (size_t g = 0; g < N_GROUPS; g++)
    if (core_keys[g].shape == MAP && !strcmp(core_keys[g].parent, key))
      return 1;
  return 0;
}

/* Where and how group g's key is documented. */
static void doc_place(const struct key_group *g, const char *key,
                      char *heading, size_t hcap, char *name, size_t ncap)
{
  if (g->shape == SEQ) {
    snprintf(heading, hcap, "### `%s` items", g->parent);
    snprintf(name, ncap, "%s", key);
  } else {
    snprintf(heading, hcap, "%s", core_heading);
    if (g->shape == MAP)
      snprintf(name, ncap, "%s.%s", g->parent, key);
    else
      snprintf(name, ncap, "%s", key);
  }
}

START_TEST(t_every_key_documented)
{
  static struct doc_keys dk;
  read_doc(&dk);
  char missing[4096] = "";
  size_t n_missing = 0;
  for (size_t g = 0; g < N_GROUPS; g++)
    for (size_t k = 0; core_keys[g].keys[k]; k++) {
      char heading[128], name[NAME_LEN * 2];
      /* A mapping like `listen` is documented through its keys. */
      if (core_keys[g].shape == TOP && is_map_parent(core_keys[g].keys[k]))
        continue;
      doc_place(&core_keys[g], core_keys[g].keys[k], heading,
                sizeof(heading), name, sizeof(name));
      if (doc_has(&dk, heading, name))
        continue;
      n_missing++;
      size_t len = strlen(missing);
      snprintf(missing + len, sizeof(missing) - len,
               "\n  `%s` in the first column of a table under \"%s\"", name,
               heading);
    }
  ck_assert_msg(n_missing == 0, "docs/configuration.md lacks %zu key(s):%s",
                n_missing, missing);
}
END_TEST

/* The key tables of the doc name only keys provd accepts. */
START_TEST(t_no_stale_keys_documented)
{
  static struct doc_keys dk;
  read_doc(&dk);
  for (size_t i = 0; i < dk.n; i++) {
    const struct doc_key *d = &dk.items[i];
    int known = 0, checked = 0; /* checked: a heading with core keys */
    for (size_t g = 0; g < N_GROUPS && !known; g++) {
      char heading[128], name[NAME_LEN * 2];
      for (size_t k = 0; core_keys[g].keys[k] && !known; k++) {
        doc_place(&core_keys[g], core_keys[g].keys[k], heading,
                  sizeof(heading), name, sizeof(name));
        checked |= !strcmp(heading, d->heading);
        known = !strcmp(heading, d->heading) && !strcmp(name, d->key);
      }
    }
    ck_assert_msg(known || !checked,
                  "docs/configuration.md documents `%s` under \"%s\", but "
                  "provd has no such key", d->key, d->heading);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("config_docs");
  TCase *tc = tcase_create("keys");
  tcase_add_test(tc, t_list_matches_config_c);
  tcase_add_loop_test(tc, t_list_is_the_schema, 0, (int)N_GROUPS);
  tcase_add_test(tc, t_every_key_documented);
  tcase_add_test(tc, t_no_stale_keys_documented);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
