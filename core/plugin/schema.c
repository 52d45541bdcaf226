/* Sanity of a plugin's option schema.  A schema is code, so its mistakes
 * are the plugin author's: they are reported when the file is loaded, not
 * when an operator happens to leave an option at its default. */
#include "plugin/loader_int.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"

static int snake_case(const char *s)
{
  size_t len = strnlen(s, PLUGIN_OPTION_NAME_MAX + 1);
  if (len == 0 || len > PLUGIN_OPTION_NAME_MAX || s[0] < 'a' || s[0] > 'z')
    return 0;
  for (size_t i = 1; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

static int type_known(enum provd_opt_type t)
{
  return t >= PROVD_OPT_STRING && t <= PROVD_OPT_NODE;
}

static int enum_values_ok(const struct provd_option *o)
{
  if (!o->enum_values || !o->enum_values[0])
    return 0;
  for (size_t i = 0; o->enum_values[i]; i++)
    if (i >= PLUGIN_MAX_OPTIONS || !o->enum_values[i][0])
      return 0;
  return 1;
}

/* Parses the default with config_check_options on a one-option schema, so
 * "30s", "16KiB", enums and booleans follow exactly the YAML rules. */
static int default_parses(const char *path, const char *plugin_name,
                          const struct provd_option *o, char *why,
                          size_t why_len)
{
  struct provd_option one[2];
  memset(one, 0, sizeof(one));
  one[0] = *o;
  one[0].flags = 0; /* not required, nothing secret to resolve */
  struct cfg_pos where = {path, 1, 1};
  struct diag d = {0};
  json_t *out = NULL;
  int rc = config_check_options(one, NULL, &where, plugin_name, &out,
                                &d);
  json_decref(out);
  if (rc == 0 && d.n == 0) {
    diag_free(&d);
    return 1;
  }
  /* Drop the "PATH:1:1: " prefix: it points at no real line. */
  const char *msg = d.n ? d.lines[0] : "rejected";
  char prefix[512];
  snprintf(prefix, sizeof(prefix), "%s:1:1: ", path);
  if (strncmp(msg, prefix, strlen(prefix)) == 0)
    msg += strlen(prefix);
  snprintf(why, why_len, "%s", msg);
  diag_free(&d);
  return 0;
}

static int check_option(const char *path, const struct provd_plugin *p,
                        size_t idx, struct provd_err *err)
{
  const struct provd_option *o = &p->options[idx];
  const char *problem = NULL;
  char why[400] = "";
  if (!snake_case(o->name))
    problem = "name is not snake_case ([a-z][a-z0-9_]*, at most 63)";
  else if (!o->description || !o->description[0])
    problem = "description missing";
  else if (!type_known(o->type))
    problem = "unknown type";
  else if (o->type == PROVD_OPT_ENUM && !enum_values_ok(o))
    problem = "enum without enum_values";
  else if ((o->flags & PROVD_OPT_REQUIRED) && o->default_value)
    problem = "required option has a default";
  for (size_t j = 0; !problem && j < idx; j++)
    if (strcmp(p->options[j].name, o->name) == 0)
      problem = "declared twice";
  if (!problem && o->default_value &&
      !default_parses(path, p->name, o, why, sizeof(why))) {
    /* The config module's text names the plugin, option and value. */
    perr_set(err, "PLUGIN_BAD_SCHEMA", "%s: bad option schema: %s", path,
             why);
    return -1;
  }
  if (!problem)
    return 0;
  char shown[PLUGIN_OPTION_NAME_MAX + 1];
  plugin_text_shown(shown, sizeof(shown), o->name);
  perr_set(err, "PLUGIN_BAD_SCHEMA",
           "%s: bad option schema: plugin '%s': option %zu ('%s'): %s",
           path, p->name, idx, shown, problem);
  return -1;
}

int plugin_check_schema(const char *path, const struct provd_plugin *p,
                        struct provd_err *err)
{
  if (!p->options)
    return 0;
  for (size_t i = 0; p->options[i].name; i++) {
    if (i >= PLUGIN_MAX_OPTIONS) {
      perr_set(err, "PLUGIN_BAD_SCHEMA",
               "%s: plugin \"%s\": bad option schema: more than %d options "
               "(missing NULL-name terminator?)",
               path, p->name, PLUGIN_MAX_OPTIONS);
      return -1;
    }
    if (check_option(path, p, i, err) != 0)
      return -1;
  }
  return 0;
}
