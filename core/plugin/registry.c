/* The instance registry: turns the config's plugin declarations into
 * created + configured instances, and drives start / stop / destroy. */
#include "plugin/loader.h"
#include "plugin/loader_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define MAX_INSTANCES 256

static void instance_free(struct plugin_instance *inst)
{
  if (!inst)
    return;
  for (size_t i = 0; i < inst->n_events; i++)
    free(inst->events[i]);
  free(inst->events);
  json_decref(inst->options);
  free(inst->name);
  free(inst->id);
  free(inst->path);
  pthread_mutex_destroy(&inst->op_lock);
  free(inst);
}

/* A new instance without plugin state; options_take is owned by it. */
static struct plugin_instance *instance_new(const struct cfg_plugin_decl *decl,
                                            const struct provd_plugin *desc,
                                            const char *path,
                                            json_t *options_take)
{
  struct plugin_instance *inst = calloc(1, sizeof(*inst));
  if (!inst) {
    json_decref(options_take);
    return NULL;
  }
  pthread_mutex_init(&inst->op_lock, NULL);
  inst->desc = desc;
  inst->kind = (enum provd_kind)desc->kind;
  inst->options = options_take;
  inst->pos = decl->pos;
  inst->name = strdup(desc->name);
  inst->id = strdup(decl->id ? decl->id : desc->name);
  inst->path = strdup(path);
  int ok = inst->name && inst->id && inst->path;
  if (ok && decl->n_events) {
    inst->events = calloc(decl->n_events, sizeof(char *));
    ok = inst->events != NULL;
    for (size_t i = 0; ok && i < decl->n_events; i++) {
      inst->events[i] = strdup(decl->events[i]);
      ok = inst->events[i] != NULL;
      inst->n_events = i + 1;
    }
  }
  if (!ok) {
    instance_free(inst);
    return NULL;
  }
  return inst;
}

static int set_append(struct plugin_set *set, struct plugin_instance *inst)
{
  if (set->n >= MAX_INSTANCES)
    return -1;
  struct plugin_instance **items =
      realloc(set->items, (set->n + 1) * sizeof(*items));
  if (!items)
    return -1;
  items[set->n++] = inst;
  set->items = items;
  return 0;
}

static const char *decl_id(const struct cfg_plugin_decl *decl)
{
  return decl->id ? decl->id : decl->name ? decl->name : "";
}

/* Instance ids are unique per kind; names an earlier declaration with the
 * same one, or NULL. */
static const struct cfg_plugin_decl *
earlier_with_id(const struct cfg_plugin_decl *const *decls, size_t upto)
{
  const struct cfg_plugin_decl *me = decls[upto];
  for (size_t i = 0; i < upto; i++)
    if (decls[i]->kind == me->kind &&
        strcmp(decl_id(decls[i]), decl_id(me)) == 0)
      return decls[i];
  return NULL;
}

/* The storage plugin's database goes into data_dir unless the config says
 * otherwise. */
static int default_storage_path(const struct provd_config *cfg,
                                const struct provd_plugin *desc,
                                json_t *opts)
{
  int has_path_option = 0;
  for (size_t i = 0; desc->options && desc->options[i].name; i++)
    if (strcmp(desc->options[i].name, "path") == 0)
      has_path_option = 1;
  if (!has_path_option || json_object_get(opts, "path"))
    return 0;
  char db[PATH_MAX];
  int n = snprintf(db, sizeof(db), "%s/provd.db",
                   cfg->data_dir ? cfg->data_dir : ".");
  if (n < 0 || (size_t)n >= sizeof(db))
    return -1;
  return json_object_set_new(opts, "path", json_string(db));
}

static void log_loaded(const struct plugin_instance *inst)
{
  const struct provd_plugin *d = inst->desc;
  log_info("plugin",
           "loaded %s plugin %s (instance %s) version %s vendor \"%s\" "
           "ABI %u.%u from %s",
           plugin_kind_name(inst->kind), inst->name, inst->id,
           d->version ? d->version : "-", d->vendor ? d->vendor : "-",
           (unsigned)d->abi_major, (unsigned)d->abi_minor, inst->path);
}

/* create() then configure(); destroys what it created when either fails. */
static int instance_bring_up(struct plugin_instance *inst,
                             const struct cfg_plugin_decl *decl,
                             struct diag *d)
{
  const struct provd_lifecycle *lc = inst->desc->lifecycle;
  struct provd_err err = {{0}, {0}};
  int rc = lc->create(host_api(), (struct provd_instance *)inst,
                      &inst->state, &err);
  if (rc != PROVD_OK) {
    diag_add(d, &decl->pos, "%s plugin \"%s\": create failed: %s (%s)",
             plugin_kind_name(inst->kind), inst->id,
             err.msg[0] ? err.msg : "no message", perr_strstatus(rc));
    inst->state = NULL;
    return -1;
  }
  if (lc->configure) {
    rc = lc->configure(inst->state, cfg_from_json(inst->options), &err);
    if (rc != PROVD_OK) {
      diag_add(d, &decl->pos, "%s plugin \"%s\": configure failed: %s (%s)",
               plugin_kind_name(inst->kind), inst->id,
               err.msg[0] ? err.msg : "no message", perr_strstatus(rc));
      lc->destroy(inst->state);
      inst->state = NULL;
      return -1;
    }
  }
  return 0;
}

/* Opens the plugin a declaration names and checks it is what the
 * declaration says it is. */
static const struct provd_plugin *open_declared(const struct provd_config *cfg,
                                                const struct cfg_plugin_decl *decl,
                                                char *path, size_t path_len,
                                                struct diag *d)
{
  struct provd_err err = {{0}, {0}};
  const struct provd_plugin *desc = NULL;
  if (plugin_resolve(cfg, decl, path, path_len, &err) != 0 ||
      plugin_open(path, &desc, &err) != 0) {
    diag_add(d, &decl->pos, "%s", err.msg);
    return NULL;
  }
  if ((enum provd_kind)desc->kind != decl->kind) {
    const char *is = plugin_kind_name((enum provd_kind)desc->kind);
    diag_add(d, &decl->pos, "%s: declared as %s, the file is %s %s plugin",
             path, plugin_kind_name(decl->kind),
             strchr("aeiou", is[0]) ? "an" : "a", is);
    return NULL;
  }
  if (decl->name && strcmp(decl->name, desc->name) != 0) {
    diag_add(d, &decl->pos,
             "%s: declared as \"%s\", the file is plugin \"%s\"", path,
             decl->name, desc->name);
    return NULL;
  }
  return desc;
}

static int load_one(const struct provd_config *cfg,
                    const struct cfg_plugin_decl *decl, struct plugin_set *set,
                    struct diag *d)
{
  char path[PATH_MAX];
  const struct provd_plugin *desc =
      open_declared(cfg, decl, path, sizeof(path), d);
  if (!desc)
    return -1;
  json_t *opts = NULL;
  if (config_check_options(desc->options, decl->options, &decl->pos,
                           desc->name, &opts, d) != 0)
    return -1;
  if (decl->kind == PROVD_KIND_STORAGE &&
      default_storage_path(cfg, desc, opts) != 0) {
    diag_add(d, &decl->pos, "data_dir too long for the database path");
    json_decref(opts);
    return -1;
  }
  struct plugin_instance *inst = instance_new(decl, desc, path, opts);
  if (!inst || set_append(set, inst) != 0) {
    diag_add(d, &decl->pos, "%s: out of memory or too many plugins", path);
    instance_free(inst);
    return -1;
  }
  if (instance_bring_up(inst, decl, d) != 0) {
    set->n--;
    instance_free(inst);
    return -1;
  }
  log_loaded(inst);
  return 0;
}

int plugins_load(const struct provd_config *cfg, struct plugin_set *set,
                 struct diag *d)
{
  size_t n = cfg->n_plugins + 1;
  const struct cfg_plugin_decl **decls = calloc(n, sizeof(*decls));
  if (!decls) {
    diag_add(d, &cfg->storage.pos, "out of memory");
    return -1;
  }
  decls[0] = &cfg->storage;
  for (size_t i = 0; i < cfg->n_plugins; i++)
    decls[i + 1] = &cfg->plugins[i];
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    const struct cfg_plugin_decl *first = earlier_with_id(decls, i);
    if (first) {
      diag_add(d, &decls[i]->pos,
               "duplicate %s instance id \"%s\" (first declared at "
               "%s:%d:%d); give one of them another `id:`",
               plugin_kind_name(decls[i]->kind), decl_id(decls[i]),
               first->pos.file ? first->pos.file : "?", first->pos.line,
               first->pos.col);
      failed = 1;
      continue;
    }
    if (load_one(cfg, decls[i], set, d) != 0)
      failed = 1;
  }
  free(decls);
  return failed ? -1 : 0;
}

int plugins_start(struct plugin_set *set, struct provd_err *err)
{
  for (size_t i = 0; i < set->n; i++) {
    struct plugin_instance *inst = set->items[i];
    const struct provd_lifecycle *lc = inst->desc->lifecycle;
    if (inst->started)
      continue;
    struct provd_err perr = {{0}, {0}};
    int rc = lc->start ? lc->start(inst->state, &perr) : PROVD_OK;
    if (rc != PROVD_OK) {
      perr_set(err, perr.code[0] ? perr.code : "PLUGIN_START_FAILED",
               "%s plugin \"%s\": start failed: %s (%s)",
               plugin_kind_name(inst->kind), inst->id,
               perr.msg[0] ? perr.msg : "no message", perr_strstatus(rc));
      log_error("plugin", "%s", err ? err->msg : "start failed");
      plugins_stop(set);
      return -1;
    }
    inst->started = 1;
  }
  return 0;
}

void plugins_stop(struct plugin_set *set)
{
  for (size_t i = set->n; i-- > 0;) {
    struct plugin_instance *inst = set->items[i];
    if (!inst->started)
      continue;
    if (inst->desc->lifecycle->stop)
      inst->desc->lifecycle->stop(inst->state);
    inst->started = 0;
  }
}

void plugins_free(struct plugin_set *set)
{
  if (!set)
    return;
  plugins_stop(set);
  for (size_t i = set->n; i-- > 0;) {
    struct plugin_instance *inst = set->items[i];
    inst->desc->lifecycle->destroy(inst->state);
    instance_free(inst);
  }
  free(set->items);
  set->items = NULL;
  set->n = 0;
}

struct plugin_instance *plugins_find(const struct plugin_set *set,
                                     enum provd_kind kind, const char *name)
{
  if (!name)
    return NULL;
  for (size_t i = 0; i < set->n; i++)
    if (set->items[i]->kind == kind && strcmp(set->items[i]->id, name) == 0)
      return set->items[i];
  /* An instance id defaults to the plugin name; fall back to the name so
   * "the hashed allocator" is found whatever its instance is called. */
  for (size_t i = 0; i < set->n; i++)
    if (set->items[i]->kind == kind &&
        strcmp(set->items[i]->name, name) == 0)
      return set->items[i];
  return NULL;
}

struct plugin_instance *plugins_nth(const struct plugin_set *set,
                                    enum provd_kind kind, size_t n)
{
  for (size_t i = 0; i < set->n; i++)
    if (set->items[i]->kind == kind && n-- == 0)
      return set->items[i];
  return NULL;
}

void plugin_op_enter(struct plugin_instance *inst)
{
  if (!(inst->desc->flags & PROVD_PLUGIN_THREADSAFE))
    pthread_mutex_lock(&inst->op_lock);
}

void plugin_op_leave(struct plugin_instance *inst)
{
  if (!(inst->desc->flags & PROVD_PLUGIN_THREADSAFE))
    pthread_mutex_unlock(&inst->op_lock);
}
