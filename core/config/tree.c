/* YAML text -> struct cfg_node tree with 1-based positions, using the
 * libyaml event API.  ${NAME} references in scalar values are expanded
 * here, once, so every consumer sees the final text. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/tree.h"

struct builder {
  yaml_parser_t parser;
  const char *file;
  const char *text;
  size_t len;
  struct diag *d;
  size_t nodes;
  int errors; /* problems that did not stop the parse */
};

static struct cfg_pos mark_pos(const struct builder *b, yaml_mark_t m)
{
  struct cfg_pos p = {b->file, (int)m.line + 1, (int)m.column + 1};
  return p;
}

/* Reader errors (bad UTF-8) carry a byte offset instead of a mark. */
static struct cfg_pos offset_pos(const struct builder *b, size_t off)
{
  struct cfg_pos p = {b->file, 1, 1};
  for (size_t i = 0; i < off && i < b->len; i++) {
    if (b->text[i] == '\n') {
      p.line++;
      p.col = 1;
    } else {
      p.col++;
    }
  }
  return p;
}

static void syntax_error(struct builder *b)
{
  const yaml_parser_t *ps = &b->parser;
  const char *problem = ps->problem ? ps->problem : "unknown problem";
  struct cfg_pos pos;
  if (ps->error == YAML_MEMORY_ERROR) {
    struct cfg_pos p = {b->file, 0, 0};
    diag_add(b->d, &p, "out of memory while parsing");
    return;
  }
  if (ps->error == YAML_READER_ERROR) {
    pos = offset_pos(b, ps->problem_offset);
    diag_add(b->d, &pos, "syntax error: %s", problem);
    return;
  }
  pos = mark_pos(b, ps->problem_mark);
  if (ps->context)
    diag_add(b->d, &pos, "syntax error: %s (%s at line %d, column %d)",
             problem, ps->context, (int)ps->context_mark.line + 1,
             (int)ps->context_mark.column + 1);
  else
    diag_add(b->d, &pos, "syntax error: %s", problem);
}

static int next_event(struct builder *b, yaml_event_t *ev)
{
  if (!yaml_parser_parse(&b->parser, ev)) {
    syntax_error(b);
    return -1;
  }
  return 0;
}

void cfg_tree_free(struct cfg_node *n)
{
  if (!n)
    return;
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys)
      cfg_tree_free(n->keys[i]);
    cfg_tree_free(n->items[i]);
  }
  free(n->keys);
  free(n->items);
  free(n->text);
  free(n);
}

int cfg_tree_equal(const struct cfg_node *a, const struct cfg_node *b)
{
  if (cfg_is_absent(a) || cfg_is_absent(b))
    return cfg_is_absent(a) && cfg_is_absent(b);
  if (a->type != b->type || a->n != b->n)
    return 0;
  if (a->type == CFG_SCALAR)
    return strcmp(a->text, b->text) == 0 && a->quoted == b->quoted;
  for (size_t i = 0; i < a->n; i++) {
    if ((a->keys && !cfg_tree_equal(a->keys[i], b->keys[i])) ||
        !cfg_tree_equal(a->items[i], b->items[i]))
      return 0;
  }
  return 1;
}

static struct cfg_node *new_node(struct builder *b, enum cfg_type type,
                                 yaml_mark_t mark)
{
  if (++b->nodes > CFG_MAX_NODES) {
    struct cfg_pos p = mark_pos(b, mark);
    diag_add(b->d, &p, "too many nodes (limit %d)", CFG_MAX_NODES);
    return NULL;
  }
  struct cfg_node *n = calloc(1, sizeof(*n));
  if (!n) {
    struct cfg_pos p = mark_pos(b, mark);
    diag_add(b->d, &p, "out of memory");
    return NULL;
  }
  n->type = type;
  n->pos = mark_pos(b, mark);
  return n;
}

/* ---- ${NAME} expansion ---- */

struct sbuf {
  char *s;
  size_t len, cap;
};

static int sbuf_add(struct sbuf *sb, const char *p, size_t n)
{
  if (sb->len + n + 1 > CFG_MAX_SCALAR + 1)
    return -1;
  if (sb->len + n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + n + 1)
      cap *= 2;
    char *s = realloc(sb->s, cap);
    if (!s)
      return -1;
    sb->s = s;
    sb->cap = cap;
  }
  memcpy(sb->s + sb->len, p, n);
  sb->len += n;
  sb->s[sb->len] = '\0';
  return 0;
}

static int is_name_char(char c, int first)
{
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
    return 1;
  return !first && c >= '0' && c <= '9';
}

/* Length of a valid NAME at p ending in '}', or 0. */
static size_t var_name_len(const char *p, const char *end)
{
  size_t n = 0;
  while (p + n < end && p[n] != '}') {
    if (!is_name_char(p[n], n == 0) || n >= 255)
      return 0;
    n++;
  }
  return (p + n < end && n > 0) ? n : 0;
}

/* Expands ${NAME} and turns $${ into a literal ${.  On error adds a
 * diagnostic, counts it, and returns the unexpanded text so the rest of
 * the file still gets checked. */
static char *expand_env(struct builder *b, const char *text, size_t len,
                        const struct cfg_pos *pos, int *failed)
{
  struct sbuf sb = {0};
  const char *p = text, *end = text + len;
  int bad = 0;
  while (p < end && !bad) {
    const char *dollar = memchr(p, '$', (size_t)(end - p));
    if (!dollar) {
      bad = sbuf_add(&sb, p, (size_t)(end - p)) ? 2 : 0;
      break;
    }
    if (sbuf_add(&sb, p, (size_t)(dollar - p))) {
      bad = 2;
      break;
    }
    if (dollar + 2 < end && dollar[1] == '$' && dollar[2] == '{') {
      bad = sbuf_add(&sb, "${", 2) ? 2 : 0;
      p = dollar + 3;
      continue;
    }
    if (dollar + 1 >= end || dollar[1] != '{') {
      bad = sbuf_add(&sb, "$", 1) ? 2 : 0;
      p = dollar + 1;
      continue;
    }
    size_t n = var_name_len(dollar + 2, end);
    if (n == 0) {
      diag_add(b->d, pos,
               "bad variable reference: expected ${NAME} with NAME of "
               "letters, digits and '_' (write $${ for a literal ${)");
      bad = 1;
      break;
    }
    char name[256];
    memcpy(name, dollar + 2, n);
    name[n] = '\0';
    const char *val = getenv(name);
    if (!val) {
      diag_add(b->d, pos, "environment variable '%s' is not set", name);
      bad = 1;
      break;
    }
    if (sbuf_add(&sb, val, strlen(val))) {
      bad = 2;
      break;
    }
    p = dollar + 2 + n + 1;
  }
  if (bad == 2)
    diag_add(b->d, pos, "string too long after ${} expansion (limit %d)",
             CFG_MAX_SCALAR);
  if (bad) {
    b->errors++;
    free(sb.s);
    *failed = 1;
    return strndup(text, len);
  }
  if (!sb.s)
    return strdup("");
  return sb.s;
}

/* ---- nodes ---- */

static int is_null_text(const char *t)
{
  return !*t || !strcmp(t, "~") || !strcmp(t, "null") ||
         !strcmp(t, "Null") || !strcmp(t, "NULL");
}

static int build_scalar(struct builder *b, yaml_event_t *ev, int is_key,
                        struct cfg_node **out)
{
  const char *val = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  struct cfg_node *n = new_node(b, CFG_SCALAR, ev->start_mark);
  if (!n)
    return -1;
  const char *tag = (const char *)ev->data.scalar.tag;
  n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
              (tag && !strcmp(tag, YAML_STR_TAG));
  if (memchr(val, '\0', len)) {
    diag_add(b->d, &n->pos, "strings must not contain NUL bytes");
    b->errors++;
    n->bad = 1;
    len = strlen(val);
  }
  if (len > CFG_MAX_SCALAR) {
    diag_add(b->d, &n->pos, "string too long (limit %d)", CFG_MAX_SCALAR);
    free(n);
    return -1;
  }
  n->is_null = !n->quoted && is_null_text(val);
  if (is_key || n->is_null)
    n->text = strndup(val, len);
  else
    n->text = expand_env(b, val, len, &n->pos, &n->bad);
  if (!n->text) {
    free(n);
    diag_add(b->d, NULL, "out of memory");
    return -1;
  }
  *out = n;
  return 0;
}

static int build_node(struct builder *b, yaml_event_t *ev, int depth,
                      int is_key, struct cfg_node **out);

static int add_item(struct builder *b, struct cfg_node *coll,
                    struct cfg_node *key, struct cfg_node *item)
{
  if (coll->n >= CFG_MAX_ITEMS) {
    diag_add(b->d, &item->pos, "too many entries (limit %d)", CFG_MAX_ITEMS);
    return -1;
  }
  struct cfg_node **items = realloc(coll->items, (coll->n + 1) * sizeof(*items));
  if (!items)
    return -1;
  coll->items = items;
  if (coll->type == CFG_MAP) {
    struct cfg_node **keys = realloc(coll->keys, (coll->n + 1) * sizeof(*keys));
    if (!keys)
      return -1;
    coll->keys = keys;
    coll->keys[coll->n] = key;
  }
  coll->items[coll->n++] = item;
  return 0;
}

/* Builds children until the end event of a sequence or mapping. */
static int build_children(struct builder *b, struct cfg_node *coll,
                          int depth)
{
  yaml_event_type_t end_type =
      coll->type == CFG_MAP ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
  for (;;) {
    yaml_event_t ev;
    struct cfg_node *key = NULL, *item = NULL;
    if (next_event(b, &ev))
      return -1;
    if (ev.type == end_type) {
      yaml_event_delete(&ev);
      return 0;
    }
    if (coll->type == CFG_MAP) {
      if (build_node(b, &ev, depth + 1, 1, &key))
        return -1;
      if (next_event(b, &ev)) {
        cfg_tree_free(key);
        return -1;
      }
    }
    if (build_node(b, &ev, depth + 1, 0, &item)) {
      cfg_tree_free(key);
      return -1;
    }
    if (key && key->type != CFG_SCALAR) {
      diag_add(b->d, &key->pos, "mapping keys must be strings, not %s",
               cfg_type_desc(key));
      b->errors++;
      cfg_tree_free(key);
      cfg_tree_free(item);
      continue;
    }
    const struct cfg_node *first = key ? cfg_map_get(coll, key->text) : NULL;
    if (first) {
      const struct cfg_node *fk = NULL;
      for (size_t i = 0; i < coll->n; i++)
        if (coll->items[i] == first)
          fk = coll->keys[i];
      diag_add(b->d, &key->pos, "duplicate key '%s' (first at line %d, column %d)",
               key->text, fk->pos.line, fk->pos.col);
      b->errors++;
      cfg_tree_free(key);
      cfg_tree_free(item);
      continue;
    }
    if (add_item(b, coll, key, item)) {
      cfg_tree_free(key);
      cfg_tree_free(item);
      return -1;
    }
  }
}

/* Takes ownership of *ev. */
static int build_node(struct builder *b, yaml_event_t *ev, int depth,
                      int is_key, struct cfg_node **out)
{
  int rc = -1;
  struct cfg_pos pos = mark_pos(b, ev->start_mark);
  *out = NULL;
  if (depth > CFG_MAX_DEPTH) {
    diag_add(b->d, &pos, "nested too deeply (limit %d)", CFG_MAX_DEPTH);
  } else if (ev->type == YAML_SCALAR_EVENT) {
    rc = build_scalar(b, ev, is_key, out);
  } else if (ev->type == YAML_SEQUENCE_START_EVENT ||
             ev->type == YAML_MAPPING_START_EVENT) {
    enum cfg_type t = ev->type == YAML_MAPPING_START_EVENT ? CFG_MAP : CFG_SEQ;
    struct cfg_node *n = new_node(b, t, ev->start_mark);
    if (n) {
      yaml_event_delete(ev);
      if (build_children(b, n, depth)) {
        cfg_tree_free(n);
        return -1;
      }
      *out = n;
      return 0;
    }
  } else if (ev->type == YAML_ALIAS_EVENT) {
    diag_add(b->d, &pos, "aliases (*%s) are not supported",
             (const char *)ev->data.alias.anchor);
  } else {
    diag_add(b->d, &pos, "unexpected YAML event");
  }
  yaml_event_delete(ev);
  return rc;
}

/* Stream: STREAM-START [DOCUMENT-START node DOCUMENT-END] STREAM-END. */
static int build_stream(struct builder *b, struct cfg_node **root)
{
  yaml_event_t ev;
  if (next_event(b, &ev))
    return -1;
  yaml_event_delete(&ev); /* STREAM-START */
  if (next_event(b, &ev))
    return -1;
  if (ev.type == YAML_STREAM_END_EVENT) {
    yaml_event_delete(&ev);
    return 0;
  }
  yaml_event_delete(&ev); /* DOCUMENT-START */
  if (next_event(b, &ev) || build_node(b, &ev, 0, 0, root))
    return -1;
  if (next_event(b, &ev))
    return -1;
  yaml_event_delete(&ev); /* DOCUMENT-END */
  if (next_event(b, &ev))
    return -1;
  if (ev.type != YAML_STREAM_END_EVENT) {
    struct cfg_pos pos = mark_pos(b, ev.start_mark);
    diag_add(b->d, &pos, "only one YAML document is allowed");
    yaml_event_delete(&ev);
    return -1;
  }
  yaml_event_delete(&ev);
  return 0;
}

int cfg_tree_parse(const char *text, size_t len, const char *file,
                   struct cfg_node **root, struct diag *d)
{
  struct builder b = {.file = file, .text = text, .len = len, .d = d};
  *root = NULL;
  if (!yaml_parser_initialize(&b.parser)) {
    diag_add(d, NULL, "%s: out of memory", file);
    return -1;
  }
  yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
  int rc = build_stream(&b, root);
  yaml_parser_delete(&b.parser);
  if (rc) {
    cfg_tree_free(*root);
    *root = NULL;
    return -1;
  }
  return b.errors;
}

const struct cfg_node *cfg_map_get(const struct cfg_node *m, const char *key)
{
  if (!m || m->type != CFG_MAP)
    return NULL;
  for (size_t i = 0; i < m->n; i++)
    if (!strcmp(m->keys[i]->text, key))
      return m->items[i];
  return NULL;
}

int cfg_is_absent(const struct cfg_node *n)
{
  return !n || (n->type == CFG_SCALAR && n->is_null);
}

const char *cfg_type_desc(const struct cfg_node *n)
{
  if (!n)
    return "nothing";
  switch (n->type) {
  case CFG_MAP:
    return "a mapping";
  case CFG_SEQ:
    return "a sequence";
  case CFG_SCALAR:
    break;
  }
  return n->is_null ? "null" : "a scalar";
}

const struct cfg_pos *cfg_node_pos(const struct cfg_node *n)
{
  return n ? &n->pos : NULL;
}
