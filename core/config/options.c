/* Plugin options: an `options:` subtree checked against the plugin's
 * struct provd_option schema and turned into a typed JSON object. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree.h"

struct optck {
  struct diag *d;
  const char *label;
  int errors;
};

static void opt_err(struct optck *c, const struct cfg_pos *pos,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void opt_err(struct optck *c, const struct cfg_pos *pos,
                    const char *fmt, ...)
{
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  diag_add(c->d, pos, "plugin '%s': %s", c->label, msg);
  c->errors++;
}

static const struct provd_option *find_opt(const struct provd_option *schema,
                                           const char *name, size_t len)
{
  for (size_t i = 0; schema && schema[i].name; i++)
    if (strlen(schema[i].name) == len && !strncmp(schema[i].name, name, len))
      return &schema[i];
  return NULL;
}

/* ---- scalar values ---- */

static int url_ok(const char *s)
{
  const char *sep = strstr(s, "://");
  if (!sep || sep == s)
    return 0;
  for (const char *p = s; p < sep; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (p > s && ((*p >= '0' && *p <= '9') || strchr("+.-", *p)))))
      return 0;
  return sep[3] != '\0';
}

static void enum_list(const char *const *values, char *buf, size_t len)
{
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; values && values[i] && used < len; i++) {
    const char *sep = !i ? "" : values[i + 1] ? ", " : " or ";
    int n = snprintf(buf + used, len - used, "%s%s", sep, values[i]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
}

static json_t *parse_enum(const struct provd_option *o, const char *text,
                          char *msg, size_t msg_len)
{
  char list[256], hint[128];
  for (size_t i = 0; o->enum_values && o->enum_values[i]; i++)
    if (!strcmp(text, o->enum_values[i]))
      return json_string(text);
  if (cfg_hint(text, o->enum_values)) {
    snprintf(msg, msg_len, "unknown value '%s'%s", text,
             cfg_hint_text(text, o->enum_values, hint, sizeof(hint)));
    return NULL;
  }
  enum_list(o->enum_values, list, sizeof(list));
  snprintf(msg, msg_len, "unknown value '%s' (expected %s)", text, list);
  return NULL;
}

/* Text of a scalar option -> typed JSON; NULL with msg when invalid. */
static json_t *parse_scalar(const struct provd_option *o, const char *text,
                            char *msg, size_t msg_len)
{
  long long ll;
  unsigned long long ull;
  double dbl;
  int b;
  switch (o->type) {
  case PROVD_OPT_STRING:
    return json_string(text);
  case PROVD_OPT_PATH:
    if (*text)
      return json_string(text);
    snprintf(msg, msg_len, "expected a path, got an empty string");
    return NULL;
  case PROVD_OPT_URL:
    if (url_ok(text))
      return json_string(text);
    snprintf(msg, msg_len, "expected a URL (scheme://...), got '%s'", text);
    return NULL;
  case PROVD_OPT_BOOL:
    if (!cfg_parse_bool(text, &b))
      return json_boolean(b);
    snprintf(msg, msg_len, "expected true or false, got '%s'", text);
    return NULL;
  case PROVD_OPT_INT:
    if (!cfg_parse_int(text, &ll))
      return json_integer(ll);
    snprintf(msg, msg_len, "expected an integer, got '%s'", text);
    return NULL;
  case PROVD_OPT_DOUBLE:
    if (!cfg_parse_double(text, &dbl))
      return json_real(dbl);
    snprintf(msg, msg_len, "expected a number, got '%s'", text);
    return NULL;
  case PROVD_OPT_DURATION:
    if (!cfg_parse_duration_ms(text, &ll))
      return json_integer(ll);
    snprintf(msg, msg_len, "expected a duration like 250ms, 30s, 5m or 1h, "
                           "got '%s'", text);
    return NULL;
  case PROVD_OPT_SIZE:
    if (!cfg_parse_size(text, &ull))
      return json_integer((json_int_t)ull);
    snprintf(msg, msg_len, "expected a size like 4096, 16KiB or 1MB, got '%s'",
             text);
    return NULL;
  case PROVD_OPT_ENUM:
    return parse_enum(o, text, msg, msg_len);
  case PROVD_OPT_STRING_LIST:
  case PROVD_OPT_NODE:
    break;
  }
  snprintf(msg, msg_len, "unsupported option type %d", (int)o->type);
  return NULL;
}

/* ---- subtrees ---- */

/* Plain scalars of a NODE option resolve like YAML's core schema. */
static json_t *scalar_to_json(const struct cfg_node *n)
{
  long long ll;
  double dbl;
  if (n->quoted)
    return json_string(n->text);
  if (n->is_null)
    return json_null();
  if (!strcmp(n->text, "true") || !strcmp(n->text, "false"))
    return json_boolean(n->text[0] == 't');
  if (!cfg_parse_int(n->text, &ll))
    return json_integer(ll);
  if (!cfg_parse_double(n->text, &dbl))
    return json_real(dbl);
  return json_string(n->text);
}

static json_t *node_to_json(const struct cfg_node *n)
{
  json_t *j = NULL;
  if (n->type == CFG_SCALAR)
    return scalar_to_json(n);
  j = n->type == CFG_MAP ? json_object() : json_array();
  for (size_t i = 0; j && i < n->n; i++) {
    json_t *item = node_to_json(n->items[i]);
    int rc = !item ? -1
             : n->type == CFG_MAP
                 ? json_object_set_new(j, n->keys[i]->text, item)
                 : json_array_append_new(j, item);
    if (rc) {
      json_decref(j);
      return NULL;
    }
  }
  return j;
}

static json_t *string_list(const struct cfg_node *n, char *msg,
                           size_t msg_len, const struct cfg_pos **at)
{
  if (n->type != CFG_SEQ) {
    snprintf(msg, msg_len, "expected a sequence of strings, got %s",
             cfg_type_desc(n));
    return NULL;
  }
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n->n; i++) {
    const struct cfg_node *it = n->items[i];
    if (it->type != CFG_SCALAR || it->is_null) {
      snprintf(msg, msg_len, "item %zu: expected a string, got %s", i,
               cfg_type_desc(it));
      *at = &it->pos;
      json_decref(arr);
      return NULL;
    }
    json_array_append_new(arr, json_string(it->text));
  }
  return arr;
}

/* Checks one value node of option o.  *at is where a problem is. */
static json_t *parse_node(const struct provd_option *o,
                          const struct cfg_node *n, char *msg, size_t msg_len,
                          const struct cfg_pos **at)
{
  *at = &n->pos;
  if (o->type == PROVD_OPT_NODE)
    return node_to_json(n);
  if (o->type == PROVD_OPT_STRING_LIST)
    return string_list(n, msg, msg_len, at);
  if (n->type != CFG_SCALAR) {
    snprintf(msg, msg_len, "expected a scalar, got %s", cfg_type_desc(n));
    return NULL;
  }
  return parse_scalar(o, n->text, msg, msg_len);
}

/* A default is YAML scalar text; lists and nodes are parsed as YAML. */
static json_t *parse_default(const struct provd_option *o, char *msg,
                             size_t msg_len)
{
  if (o->type != PROVD_OPT_STRING_LIST && o->type != PROVD_OPT_NODE)
    return parse_scalar(o, o->default_value, msg, msg_len);
  struct diag d = {0};
  struct cfg_node *root = NULL;
  json_t *j = NULL;
  const struct cfg_pos *at;
  if (cfg_tree_parse(o->default_value, strlen(o->default_value), "default",
                     &root, &d) == 0) {
    if (!root)
      j = o->type == PROVD_OPT_NODE ? json_null() : json_array();
    else
      j = parse_node(o, root, msg, msg_len, &at);
  } else {
    snprintf(msg, msg_len, "%s", d.n ? d.lines[0] : "not valid YAML");
  }
  cfg_tree_free(root);
  diag_free(&d);
  return j;
}

/* ---- the check ---- */

static void set_value(struct optck *c, json_t *obj, const char *name,
                      json_t *v, const struct cfg_pos *at)
{
  if (!v || json_object_set_new(obj, name, v))
    opt_err(c, at, "option '%s': out of memory", name);
}

/* The option was given but is wrong (already reported): a placeholder
 * keeps apply_defaults() from also calling it missing. */
static void mark_given(json_t *obj, const char *name)
{
  json_object_set_new(obj, name, json_null());
}

static void check_value(struct optck *c, const struct provd_option *o,
                        const struct cfg_node *val, json_t *obj)
{
  char msg[512];
  const struct cfg_pos *at;
  if (val->bad) {
    c->errors++; /* reported while parsing */
    mark_given(obj, o->name);
    return;
  }
  json_t *v = parse_node(o, val, msg, sizeof(msg), &at);
  if (!v && (o->flags & PROVD_OPT_SENSITIVE)) {
    /* msg quotes the value: never print a secret, even a mistyped one */
    opt_err(c, at, "option '%s': not a valid value (not shown: sensitive)",
            o->name);
    mark_given(obj, o->name);
  } else if (!v) {
    opt_err(c, at, "option '%s': %s", o->name, msg);
    mark_given(obj, o->name);
  } else
    set_value(c, obj, o->name, v, at);
}

/* NAME_file: the value of sensitive option o comes from a file. */
static void check_file_value(struct optck *c, const struct provd_option *o,
                             const struct cfg_node *map, size_t i,
                             json_t *obj)
{
  const struct cfg_node *key = map->keys[i], *val = map->items[i];
  char msg[512];
  mark_given(obj, o->name); /* replaced below when the file is good */
  if (!cfg_is_absent(cfg_map_get(map, o->name))) {
    opt_err(c, &key->pos, "give either '%s' or '%s', not both", o->name,
            key->text);
    return;
  }
  if (val->type != CFG_SCALAR || val->is_null || !val->text[0]) {
    opt_err(c, &val->pos, "option '%s': expected a file path, got %s",
            key->text, val->type == CFG_SCALAR && !val->is_null
                           ? "an empty string" : cfg_type_desc(val));
    return;
  }
  if (val->bad) {
    c->errors++;
    return;
  }
  char *text = cfg_read_small_file(val->text, CFG_MAX_SECRET_FILE, msg,
                                   sizeof(msg));
  if (!text) {
    opt_err(c, &val->pos, "option '%s': cannot read '%s': %s", key->text,
            val->text, msg);
    return;
  }
  json_t *v = o->type == PROVD_OPT_STRING_LIST || o->type == PROVD_OPT_NODE
                  ? json_string(text)
                  : parse_scalar(o, text, msg, sizeof(msg));
  free(text);
  if (!v) /* msg may quote the secret: say only what is wrong with it */
    opt_err(c, &val->pos, "option '%s': the content of '%s' is not a valid "
                          "value", key->text, val->text);
  else
    set_value(c, obj, o->name, v, &val->pos);
}

static void unknown_option(struct optck *c, const struct provd_option *schema,
                           const struct cfg_node *key)
{
  const char *names[128];
  char file_names[64][72];
  size_t n = 0, nf = 0;
  for (size_t i = 0; schema && schema[i].name && n < 126; i++) {
    names[n++] = schema[i].name;
    if ((schema[i].flags & PROVD_OPT_SENSITIVE) && nf < 64) {
      snprintf(file_names[nf], sizeof(file_names[nf]), "%s_file",
               schema[i].name);
      names[n++] = file_names[nf++];
    }
  }
  names[n] = NULL;
  char hint[128];
  opt_err(c, &key->pos, "unknown option '%s'%s", key->text,
          cfg_hint_text(key->text, names, hint, sizeof(hint)));
}

static void check_entries(struct optck *c, const struct provd_option *schema,
                          const struct cfg_node *map, json_t *obj)
{
  for (size_t i = 0; i < map->n; i++) {
    const char *k = map->keys[i]->text;
    size_t len = strlen(k);
    const struct provd_option *o = find_opt(schema, k, len);
    if (o) {
      if (o->flags & PROVD_OPT_DEPRECATED)
        diag_add(c->d, &map->keys[i]->pos, "warning: plugin '%s': option "
                 "'%s' is deprecated (%s)", c->label, k, o->description);
      if (!cfg_is_absent(map->items[i]))
        check_value(c, o, map->items[i], obj);
      continue;
    }
    if (len > 5 && !strcmp(k + len - 5, "_file")) {
      o = find_opt(schema, k, len - 5);
      if (o && (o->flags & PROVD_OPT_SENSITIVE)) {
        check_file_value(c, o, map, i, obj);
        continue;
      }
    }
    unknown_option(c, schema, map->keys[i]);
  }
}

static void apply_defaults(struct optck *c, const struct provd_option *schema,
                           const struct cfg_pos *at, json_t *obj)
{
  char msg[512];
  for (size_t i = 0; schema && schema[i].name; i++) {
    const struct provd_option *o = &schema[i];
    if (json_object_get(obj, o->name))
      continue;
    if (o->default_value) {
      json_t *v = parse_default(o, msg, sizeof(msg));
      if (!v)
        opt_err(c, at, "option '%s': bad default '%s' in the plugin's schema: "
                       "%s", o->name, o->default_value, msg);
      else
        set_value(c, obj, o->name, v, at);
    } else if (o->flags & PROVD_OPT_REQUIRED) {
      opt_err(c, at, "missing required option '%s'", o->name);
    }
  }
}

int config_check_options(const struct provd_option *schema,
                         const struct cfg_node *options,
                         const struct cfg_pos *where,
                         const char *plugin_label, json_t **out,
                         struct diag *d)
{
  struct optck c = {.d = d, .label = plugin_label ? plugin_label : "?"};
  const struct cfg_pos *at = options ? &options->pos : where;
  json_t *obj = json_object();
  *out = NULL;
  if (!obj) {
    opt_err(&c, at, "out of memory");
    return -1;
  }
  if (!cfg_is_absent(options) && options->type != CFG_MAP)
    opt_err(&c, at, "options: expected a mapping, got %s",
            cfg_type_desc(options));
  else if (!cfg_is_absent(options))
    check_entries(&c, schema, options, obj);
  apply_defaults(&c, schema, at, obj);
  if (c.errors) {
    json_decref(obj);
    return -1;
  }
  *out = obj;
  return 0;
}

char *config_redact_options(const struct provd_option *schema,
                            const json_t *opts)
{
  json_t *copy = opts ? json_deep_copy(opts) : json_object();
  if (!copy)
    return NULL;
  for (size_t i = 0; schema && schema[i].name; i++)
    if ((schema[i].flags & PROVD_OPT_SENSITIVE) &&
        json_object_get(copy, schema[i].name))
      json_object_set_new(copy, schema[i].name, json_string("***"));
  char *s = json_dumps(copy, JSON_COMPACT);
  json_decref(copy);
  return s;
}
