/* Every plugin in PROVD_PLUGIN_DIR has a page docs/plugins/<name>.md whose
 * "## Options" section is its option schema, exactly (format in
 * docs/plugins/README.md):
 *
 *   | Option | Type | Default | Flags | Description |
 *   |---|---|---|---|---|
 *   | `name` | TYPE | DEFAULT | FLAGS | DESCRIPTION |
 *
 * one row per option in schema order, no other table rows.  TYPE is the
 * type name ("enum: a, b" lists the values), DEFAULT is `text` (`""` for
 * an empty default) or "—" when there is none, FLAGS is "required",
 * "sensitive", "deprecated" joined by ", " (empty cell: none), and
 * DESCRIPTION is the schema's description verbatim with '|' written '\|'.
 * Cells compare after trimming spaces.  A plugin without options says
 * "This plugin has no options." in that section and has no table. */
#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/loader.h"
#include "provd/plugin.h"
#include "util/err.h"

#define MAX_PLUGINS 64
#define MAX_DOC_BYTES (256 * 1024)
#define MAX_LINES 4096
#define MAX_CELLS 8
#define N_COLUMNS 5
#define CELL_LEN 1024
#define REPORT_LEN 12000
#define CHECK_MSG_LEN 16384 /* Check's default, 4 KiB, cuts a diff short */

static const char no_options_text[] = "This plugin has no options.";
static const char *const header_cells[N_COLUMNS] = {
    "Option", "Type", "Default", "Flags", "Description"};

/* Plugin files found by main(), sorted. */
static char *plugin_files[MAX_PLUGINS];
static size_t n_plugin_files;
static char scan_problem[512];

/* ---- the report of problems ---- */

struct report {
  char text[REPORT_LEN];
  size_t len;
  int problems;
  int truncated;
};

static void say(struct report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct report *r, const char *fmt, ...)
{
  va_list ap;
  if (r->truncated)
    return;
  va_start(ap, fmt);
  int n = vsnprintf(r->text + r->len, sizeof(r->text) - r->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(r->text) - r->len) {
    r->truncated = 1;
    r->text[r->len] = '\0';
    return;
  }
  r->len += (size_t)n;
}

/* ---- the expected row of one option ---- */

static const char *opt_type_name(enum provd_opt_type t)
{
  switch (t) {
  case PROVD_OPT_STRING: return "string";
  case PROVD_OPT_BOOL: return "bool";
  case PROVD_OPT_INT: return "int";
  case PROVD_OPT_DOUBLE: return "double";
  case PROVD_OPT_DURATION: return "duration";
  case PROVD_OPT_SIZE: return "size";
  case PROVD_OPT_ENUM: return "enum";
  case PROVD_OPT_STRING_LIST: return "string list";
  case PROVD_OPT_PATH: return "path";
  case PROVD_OPT_URL: return "url";
  case PROVD_OPT_NODE: return "node";
  }
  return "?";
}

/* Appends src to dst (capacity cap), writing '|' as "\|". */
static void append_escaped(char *dst, size_t cap, const char *src)
{
  size_t n = strlen(dst);
  for (; *src && n + 2 < cap; src++) {
    if (*src == '|')
      dst[n++] = '\\';
    dst[n++] = *src;
  }
  dst[n] = '\0';
}

static void append(char *dst, size_t cap, const char *src)
{
  size_t n = strlen(dst);
  snprintf(dst + n, cap - n, "%s", src);
}

static void expected_cells(const struct provd_option *o,
                           char cells[N_COLUMNS][CELL_LEN])
{
  for (int i = 0; i < N_COLUMNS; i++)
    cells[i][0] = '\0';
  snprintf(cells[0], CELL_LEN, "`%s`", o->name);

  append(cells[1], CELL_LEN, opt_type_name(o->type));
  for (size_t i = 0; o->type == PROVD_OPT_ENUM && o->enum_values &&
                     o->enum_values[i] && i < 64; i++) {
    append(cells[1], CELL_LEN, i ? ", " : ": ");
    append_escaped(cells[1], CELL_LEN, o->enum_values[i]);
  }

  if (!o->default_value)
    append(cells[2], CELL_LEN, "—");
  else if (!o->default_value[0])
    append(cells[2], CELL_LEN, "`\"\"`");
  else {
    append(cells[2], CELL_LEN, "`");
    append_escaped(cells[2], CELL_LEN, o->default_value);
    append(cells[2], CELL_LEN, "`");
  }

  static const struct {
    uint32_t bit;
    const char *word;
  } flags[] = {{PROVD_OPT_REQUIRED, "required"},
               {PROVD_OPT_SENSITIVE, "sensitive"},
               {PROVD_OPT_DEPRECATED, "deprecated"}};
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
    if (o->flags & flags[i].bit) {
      append(cells[3], CELL_LEN, cells[3][0] ? ", " : "");
      append(cells[3], CELL_LEN, flags[i].word);
    }

  append_escaped(cells[4], CELL_LEN, o->description ? o->description : "");
}

static void render_row(char cells[][CELL_LEN], int n, char *out, size_t cap)
{
  out[0] = '\0';
  append(out, cap, "|");
  for (int i = 0; i < n; i++) {
    append(out, cap, " ");
    append(out, cap, cells[i]);
    append(out, cap, " |");
  }
}

/* ---- reading the page ---- */

struct page {
  char *text;          /* owned, split in place into lines */
  char *lines[MAX_LINES];
  size_t n_lines;
};

static int page_read(const char *path, struct page *pg, char *why,
                     size_t why_len)
{
  memset(pg, 0, sizeof(*pg));
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(why, why_len, "cannot open it (missing?)");
    return -1;
  }
  pg->text = malloc(MAX_DOC_BYTES + 1);
  size_t n = pg->text ? fread(pg->text, 1, MAX_DOC_BYTES + 1, f) : 0;
  fclose(f);
  if (!pg->text || n > MAX_DOC_BYTES) {
    snprintf(why, why_len, "unreadable or larger than %d bytes",
             MAX_DOC_BYTES);
    free(pg->text);
    pg->text = NULL;
    return -1;
  }
  pg->text[n] = '\0';
  for (char *p = pg->text; p && *p && pg->n_lines < MAX_LINES;) {
    pg->lines[pg->n_lines++] = p;
    p = strchr(p, '\n');
    if (p)
      *p++ = '\0';
  }
  return 0;
}

static const char *skip_spaces(const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* Splits "| a | b \| c |" into trimmed cells; -1 if not a table row. */
static int split_row(const char *line, char cells[MAX_CELLS][CELL_LEN])
{
  const char *p = skip_spaces(line);
  if (*p != '|')
    return -1;
  p++;
  int n = 0;
  while (*p && n < MAX_CELLS) {
    const char *start = skip_spaces(p), *end = start;
    while (*end && !(*end == '|' && (end == start || end[-1] != '\\')))
      end++;
    if (!*end)
      break; /* text after the last '|' is not a cell */
    const char *last = end;
    while (last > start && (last[-1] == ' ' || last[-1] == '\t'))
      last--;
    snprintf(cells[n], CELL_LEN, "%.*s", (int)(last - start), start);
    n++;
    p = end + 1;
  }
  return n;
}

static int is_separator_row(char cells[MAX_CELLS][CELL_LEN], int n)
{
  if (n != N_COLUMNS)
    return 0;
  for (int i = 0; i < n; i++)
    if (!cells[i][0] || strspn(cells[i], "-:") != strlen(cells[i]))
      return 0;
  return 1;
}

/* The "## Options" section: lines [*from, *to), up to the next "## ". */
static int find_section(const struct page *pg, size_t *from, size_t *to,
                        struct report *r)
{
  size_t found = 0;
  for (size_t i = 0; i < pg->n_lines; i++)
    if (!strcmp(pg->lines[i], "## Options")) {
      if (!found)
        *from = i + 1;
      found++;
    }
  if (found != 1) {
    say(r, "  the page has %zu \"## Options\" headings; it needs exactly "
           "one\n", found);
    r->problems++;
    return -1;
  }
  *to = *from;
  while (*to < pg->n_lines && strncmp(pg->lines[*to], "## ", 3))
    (*to)++;
  return 0;
}

/* ---- comparing ---- */

static int option_index(const struct provd_option *opts, const char *cell)
{
  for (int i = 0; opts && opts[i].name && i < 1024; i++) {
    char name[CELL_LEN];
    snprintf(name, sizeof(name), "`%s`", opts[i].name);
    if (!strcmp(name, cell))
      return i;
  }
  return -1;
}

static void check_no_options(const struct page *pg, size_t from, size_t to,
                             size_t n_table, struct report *r)
{
  int said = 0;
  for (size_t i = from; i < to; i++)
    said |= !strcmp(skip_spaces(pg->lines[i]), no_options_text);
  if (!said) {
    say(r, "  the plugin has no options: the section must say \"%s\"\n",
        no_options_text);
    r->problems++;
  }
  if (n_table) {
    say(r, "  the plugin has no options, but the section has %zu table "
           "line(s)\n", n_table);
    r->problems++;
  }
}

static void check_header(char **table, size_t n_table, struct report *r)
{
  char cells[MAX_CELLS][CELL_LEN], want[CELL_LEN * 2];
  char hdr[N_COLUMNS][CELL_LEN];
  for (int i = 0; i < N_COLUMNS; i++)
    snprintf(hdr[i], CELL_LEN, "%s", header_cells[i]);
  render_row(hdr, N_COLUMNS, want, sizeof(want));
  int n = n_table ? split_row(table[0], cells) : 0;
  int ok = n == N_COLUMNS;
  for (int i = 0; ok && i < N_COLUMNS; i++)
    ok = !strcmp(cells[i], header_cells[i]);
  if (!ok) {
    say(r, "  table header\n    expected: %s\n    found:    %s\n", want,
        n_table ? table[0] : "(no table)");
    r->problems++;
  }
  n = n_table > 1 ? split_row(table[1], cells) : 0;
  if (!is_separator_row(cells, n)) {
    say(r, "  second table line must be |---|---|---|---|---|\n"
           "    found:    %s\n", n_table > 1 ? table[1] : "(nothing)");
    r->problems++;
  }
}

static void check_row(const struct provd_option *opts, size_t k,
                      const char *line, struct report *r)
{
  char want[N_COLUMNS][CELL_LEN], got[MAX_CELLS][CELL_LEN];
  char want_line[N_COLUMNS * CELL_LEN];
  expected_cells(&opts[k], want);
  render_row(want, N_COLUMNS, want_line, sizeof(want_line));
  int n = split_row(line, got);
  int col = n == N_COLUMNS ? -1 : N_COLUMNS;
  for (int i = 0; col < 0 && i < N_COLUMNS; i++)
    if (strcmp(want[i], got[i]))
      col = i;
  if (col < 0)
    return;
  r->problems++;
  say(r, "  row %zu (option `%s`) differs in %s\n    expected: %s\n"
         "    found:    %s\n", k + 1, opts[k].name,
      col < N_COLUMNS ? header_cells[col] : "its number of columns",
      want_line, line);
  int other = n > 0 ? option_index(opts, got[0]) : -1;
  if (other >= 0 && (size_t)other != k)
    say(r, "    (%s is option %d of the schema: rows follow schema order)\n",
        got[0], other + 1);
}

/* Compares the table rows (after header and separator) with the schema. */
static void check_rows(const struct provd_option *opts, char **rows,
                       size_t n_rows, struct report *r)
{
  size_t k = 0;
  for (; opts[k].name && k < 1024; k++) {
    if (k < n_rows) {
      check_row(opts, k, rows[k], r);
      continue;
    }
    char want[N_COLUMNS][CELL_LEN], line[N_COLUMNS * CELL_LEN];
    expected_cells(&opts[k], want);
    render_row(want, N_COLUMNS, line, sizeof(line));
    say(r, "  row %zu (option `%s`) is missing\n    expected: %s\n", k + 1,
        opts[k].name, line);
    r->problems++;
  }
  for (size_t i = k; i < n_rows; i++) {
    say(r, "  extra row %zu: the schema has only %zu option(s)\n"
           "    found:    %s\n", i + 1, k, rows[i]);
    r->problems++;
  }
}

static void check_page(const struct provd_plugin *desc, const char *doc,
                       struct report *r)
{
  struct page pg;
  char why[128];
  if (page_read(doc, &pg, why, sizeof(why))) {
    say(r, "  %s: %s; every plugin needs a page with an \"## Options\" "
           "section (docs/plugins/README.md)\n", doc, why);
    r->problems++;
    return;
  }
  size_t from = 0, to = 0;
  if (find_section(&pg, &from, &to, r) == 0) {
    char *table[MAX_LINES];
    size_t n_table = 0;
    int fenced = 0;
    for (size_t i = from; i < to; i++) {
      const char *s = skip_spaces(pg.lines[i]);
      if (!strncmp(s, "```", 3))
        fenced = !fenced;
      else if (!fenced && *s == '|')
        table[n_table++] = pg.lines[i];
    }
    if (!desc->options || !desc->options[0].name) {
      check_no_options(&pg, from, to, n_table, r);
    } else {
      check_header(table, n_table, r);
      check_rows(desc->options, table + 2, n_table > 2 ? n_table - 2 : 0,
                 r);
    }
  }
  free(pg.text);
}

/* ---- tests ---- */

START_TEST(t_plugins_found)
{
  ck_assert_msg(!scan_problem[0], "%s", scan_problem);
  ck_assert_msg(n_plugin_files > 0, "no *.so in PROVD_PLUGIN_DIR=%s",
                getenv("PROVD_PLUGIN_DIR"));
}
END_TEST

START_TEST(t_page_matches_schema)
{
  const char *src = getenv("PROVD_SOURCE_DIR");
  ck_assert_msg(src != NULL, "PROVD_SOURCE_DIR is not set");
  const char *so = plugin_files[_i];
  const struct provd_plugin *desc = NULL;
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(plugin_open(so, &desc, &err) == PROVD_OK, "%s: %s", so,
                err.msg);

  char doc[4096];
  snprintf(doc, sizeof(doc), "%s/docs/plugins/%s.md", src, desc->name);
  static struct report r;
  memset(&r, 0, sizeof(r));
  check_page(desc, doc, &r);
  ck_assert_msg(r.problems == 0,
                "docs/plugins/%s.md does not document the options of %s "
                "(%d problem(s)):\n%s%s",
                desc->name, so, r.problems, r.text,
                r.truncated ? "  (more not shown)\n" : "");
}
END_TEST

/* ---- finding the plugins ---- */

static int by_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void scan_plugins(void)
{
  const char *dir = getenv("PROVD_PLUGIN_DIR");
  if (!dir) {
    snprintf(scan_problem, sizeof(scan_problem),
             "PROVD_PLUGIN_DIR is not set");
    return;
  }
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(scan_problem, sizeof(scan_problem), "cannot open %s", dir);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 4 || strcmp(e->d_name + len - 3, ".so"))
      continue;
    if (n_plugin_files == MAX_PLUGINS) {
      snprintf(scan_problem, sizeof(scan_problem),
               "more than %d plugins in %s", MAX_PLUGINS, dir);
      break;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (stat(path, &st) || !S_ISREG(st.st_mode))
      continue;
    plugin_files[n_plugin_files] = strdup(path);
    if (!plugin_files[n_plugin_files]) {
      snprintf(scan_problem, sizeof(scan_problem), "out of memory");
      break;
    }
    n_plugin_files++;
  }
  closedir(d);
  qsort(plugin_files, n_plugin_files, sizeof(plugin_files[0]), by_name);
}

int main(void)
{
  check_set_max_msg_size(CHECK_MSG_LEN);
  scan_plugins();
  Suite *s = suite_create("plugin_docs");
  TCase *tc = tcase_create("pages");
  tcase_add_test(tc, t_plugins_found);
  tcase_add_loop_test(tc, t_page_matches_schema, 0, (int)n_plugin_files);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  for (size_t i = 0; i < n_plugin_files; i++)
    free(plugin_files[i]);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
