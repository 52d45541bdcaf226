/* Opening one plugin file and validating its descriptor before any plugin
 * code runs.  Every message names the file, so an operator with a dozen
 * plugins knows which one is wrong. */
#include "plugin/loader.h"
#include "plugin/loader_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "provd/alloc.h"
#include "provd/attest.h"
#include "provd/hub.h"
#include "provd/notifier.h"
#include "provd/storage.h"

/* The size of the ABI 1.0 descriptor: everything up to and including ops.
 * A newer plugin may be larger; an older or foreign one may not be
 * smaller. */
#define PLUGIN_V1_SIZE                                                    \
  (offsetof(struct provd_plugin, ops) + sizeof(const void *))

/* True when a table of `type` whose struct_size is `size` carries `field`
 * (PROVD_HAS for a size we already read). */
#define TABLE_HAS(size, type, field)                                      \
  ((size) >= offsetof(type, field) + sizeof(((type *)0)->field))

#define MAX_MECHANISMS 16

static const char *const kind_names[] = {
  [PROVD_KIND_ATTESTATION] = "attestation",
  [PROVD_KIND_ALLOCATION] = "allocation",
  [PROVD_KIND_NOTIFIER] = "notifier",
  [PROVD_KIND_HUB] = "hub",
  [PROVD_KIND_STORAGE] = "storage",
};
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

enum provd_kind plugin_kind_parse(const char *name)
{
  for (size_t k = 1; name && k < N_KINDS; k++)
    if (strcmp(name, kind_names[k]) == 0)
      return (enum provd_kind)k;
  return (enum provd_kind)0;
}

const char *plugin_kind_name(enum provd_kind kind)
{
  if ((size_t)kind >= 1 && (size_t)kind < N_KINDS)
    return kind_names[kind];
  return NULL;
}

int plugin_name_valid(const char *name)
{
  if (!name)
    return 0;
  size_t len = strnlen(name, PLUGIN_NAME_MAX + 1);
  if (len == 0 || len > PLUGIN_NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '-')))
      return 0;
  }
  return 1;
}

void plugin_text_shown(char *out, size_t out_len, const char *in)
{
  size_t o = 0;
  if (out_len == 0)
    return;
  for (size_t i = 0; in && in[i] && o + 1 < out_len; i++) {
    unsigned char c = (unsigned char)in[i];
    out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  out[o] = '\0';
}

/* ---- ops tables: the functions each kind cannot do without ---- */

/* Returns the name of the first mandatory member that is missing, or
 * NULL when the table is complete. */
static const char *attest_ops_missing(const void *ops)
{
  const struct provd_attest_ops *o = ops;
  if (!TABLE_HAS(o->struct_size, struct provd_attest_ops, attest))
    return "struct_size";
  if (!o->mechanisms || !o->mechanisms[0] || !o->mechanisms[0][0])
    return "mechanisms";
  for (size_t i = 0; o->mechanisms[i]; i++)
    if (i >= MAX_MECHANISMS)
      return "mechanisms (more than 16)";
  return o->attest ? NULL : "attest";
}

static const char *alloc_ops_missing(const void *ops)
{
  const struct provd_alloc_ops *o = ops;
  if (!TABLE_HAS(o->struct_size, struct provd_alloc_ops, allocate))
    return "struct_size";
  if (!o->policy || !o->policy[0])
    return "policy";
  return o->allocate ? NULL : "allocate";
}

static const char *notifier_ops_missing(const void *ops)
{
  const struct provd_notifier_ops *o = ops;
  if (!TABLE_HAS(o->struct_size, struct provd_notifier_ops, deliver))
    return "struct_size";
  return o->deliver ? NULL : "deliver";
}

static const char *hub_ops_missing(const void *ops)
{
  const struct provd_hub_ops *o = ops;
  if (!TABLE_HAS(o->struct_size, struct provd_hub_ops, ensure_device))
    return "struct_size";
  return o->ensure_device ? NULL : "ensure_device";
}

static const char *storage_ops_missing(const void *ops)
{
  const struct provd_storage_ops *o = ops;
  if (!TABLE_HAS(o->struct_size, struct provd_storage_ops, outbox_list))
    return "struct_size";
  const struct {
    const char *name;
    int present;
  } need[] = {
    {"session_open", o->session_open != NULL},
    {"session_close", o->session_close != NULL},
    {"tx_begin", o->tx_begin != NULL},
    {"tx_commit", o->tx_commit != NULL},
    {"tx_rollback", o->tx_rollback != NULL},
    {"get", o->get != NULL},
    {"put", o->put != NULL},
    {"del", o->del != NULL},
    {"list", o->list != NULL},
    {"count", o->count != NULL},
    {"outbox_append", o->outbox_append != NULL},
    {"outbox_list", o->outbox_list != NULL},
  };
  for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
    if (!need[i].present)
      return need[i].name;
  return NULL;
}

static const char *ops_missing(enum provd_kind kind, const void *ops)
{
  switch (kind) {
  case PROVD_KIND_ATTESTATION: return attest_ops_missing(ops);
  case PROVD_KIND_ALLOCATION: return alloc_ops_missing(ops);
  case PROVD_KIND_NOTIFIER: return notifier_ops_missing(ops);
  case PROVD_KIND_HUB: return hub_ops_missing(ops);
  case PROVD_KIND_STORAGE: return storage_ops_missing(ops);
  }
  return "kind";
}

/* ---- descriptor checks, in the order a reader can trust the bytes ---- */

static int check_header(const char *path, const struct provd_plugin *p,
                        struct provd_err *err)
{
  if (p->magic != PROVD_PLUGIN_MAGIC) {
    perr_set(err, "PLUGIN_BAD_MAGIC",
             "%s: not a provd plugin: bad magic 0x%08x (expected 0x%08x)",
             path, (unsigned)p->magic, (unsigned)PROVD_PLUGIN_MAGIC);
    return -1;
  }
  if (p->abi_major != PROVD_ABI_MAJOR) {
    perr_set(err, "PLUGIN_ABI_MISMATCH",
             "%s: built for ABI %u, this provd speaks %d", path,
             (unsigned)p->abi_major, PROVD_ABI_MAJOR);
    return -1;
  }
  if (p->struct_size < PLUGIN_V1_SIZE) {
    perr_set(err, "PLUGIN_ABI_MISMATCH",
             "%s: descriptor is %u bytes, ABI %d.0 needs at least %zu",
             path, (unsigned)p->struct_size, PROVD_ABI_MAJOR,
             (size_t)PLUGIN_V1_SIZE);
    return -1;
  }
  if (p->min_host_minor > PROVD_ABI_MINOR) {
    perr_set(err, "PLUGIN_ABI_MISMATCH",
             "%s: needs provd ABI %d.%u or newer, this provd speaks %d.%d",
             path, PROVD_ABI_MAJOR, (unsigned)p->min_host_minor,
             PROVD_ABI_MAJOR, PROVD_ABI_MINOR);
    return -1;
  }
  return 0;
}

static int check_identity(const char *path, const struct provd_plugin *p,
                          struct provd_err *err)
{
  if (!plugin_kind_name((enum provd_kind)p->kind)) {
    perr_set(err, "PLUGIN_BAD_KIND", "%s: unknown plugin kind %u", path,
             (unsigned)p->kind);
    return -1;
  }
  if (!plugin_name_valid(p->name)) {
    char shown[40];
    plugin_text_shown(shown, sizeof(shown), p->name ? p->name : "(null)");
    perr_set(err, "PLUGIN_BAD_NAME",
             "%s: bad plugin name \"%s\": must match "
             "[a-z0-9][a-z0-9_-]{0,31}",
             path, shown);
    return -1;
  }
  return 0;
}

static int check_tables(const char *path, const struct provd_plugin *p,
                        struct provd_err *err)
{
  const struct provd_lifecycle *lc = p->lifecycle;
  const char *kind = plugin_kind_name((enum provd_kind)p->kind);
  if (!lc) {
    perr_set(err, "PLUGIN_BAD_LIFECYCLE",
             "%s: plugin \"%s\" has no lifecycle table", path, p->name);
    return -1;
  }
  if (!TABLE_HAS(lc->struct_size, struct provd_lifecycle, destroy) ||
      !lc->create || !lc->destroy) {
    perr_set(err, "PLUGIN_BAD_LIFECYCLE",
             "%s: plugin \"%s\": lifecycle lacks %s", path, p->name,
             !TABLE_HAS(lc->struct_size, struct provd_lifecycle, destroy)
                 ? "struct_size"
                 : !lc->create ? "create" : "destroy");
    return -1;
  }
  if (!p->ops) {
    perr_set(err, "PLUGIN_MISSING_OPS",
             "%s: plugin \"%s\" (%s) has no ops table", path, p->name, kind);
    return -1;
  }
  const char *missing = ops_missing((enum provd_kind)p->kind, p->ops);
  if (missing) {
    perr_set(err, "PLUGIN_MISSING_OPS",
             "%s: plugin \"%s\" (%s) lacks mandatory op %s", path, p->name,
             kind, missing);
    return -1;
  }
  return 0;
}

/* Strips a leading "PATH: " from dlerror() text, which repeats the file we
 * already name. */
static const char *dl_reason(const char *path)
{
  const char *e = dlerror();
  if (!e)
    return "unknown dlopen error";
  size_t n = strlen(path);
  if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
    return e + n + 2;
  return e;
}

static int check_file(const char *path, struct provd_err *err)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    perr_set(err, "PLUGIN_NOT_FOUND", "%s: cannot open plugin: %s", path,
             strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    perr_set(err, "PLUGIN_NOT_FOUND",
             "%s: cannot open plugin: not a regular file", path);
    return -1;
  }
  return 0;
}

int plugin_open(const char *path, const struct provd_plugin **out,
                struct provd_err *err)
{
  *out = NULL;
  if (check_file(path, err) != 0)
    return -1;
  /* Never dlclose()d: plugin libraries (OpenSSL, tpm2-tss...) do not all
   * survive being unloaded, and a config reload does not reload code. */
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    perr_set(err, "PLUGIN_NOT_LOADABLE", "%s: not a shared object: %s",
             path, dl_reason(path));
    return -1;
  }
  dlerror();
  const struct provd_plugin *p = dlsym(handle, PROVD_PLUGIN_SYMBOL);
  if (!p) {
    perr_set(err, "PLUGIN_NO_SYMBOL",
             "%s: not a provd plugin: symbol %s not found", path,
             PROVD_PLUGIN_SYMBOL);
    return -1;
  }
  if (check_header(path, p, err) != 0 || check_identity(path, p, err) != 0 ||
      check_tables(path, p, err) != 0 ||
      plugin_check_schema(path, p, err) != 0)
    return -1;
  *out = p;
  return 0;
}

/* ---- resolving a declaration to a file ---- */

static int file_exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int try_candidate(char *out, size_t out_len, const char *dir,
                         const char *prefix, const char *name)
{
  int n = snprintf(out, out_len, "%s/%s%s.so", dir, prefix, name);
  return n > 0 && (size_t)n < out_len && file_exists(out);
}

int plugin_resolve(const struct provd_config *cfg,
                   const struct cfg_plugin_decl *decl, char *out,
                   size_t out_len, struct provd_err *err)
{
  const char *kind = plugin_kind_name(decl->kind);
  if (decl->path) {
    int n = snprintf(out, out_len, "%s", decl->path);
    if (n < 0 || (size_t)n >= out_len) {
      perr_set(err, "PLUGIN_NOT_FOUND", "plugin path too long");
      return -1;
    }
    return 0;
  }
  if (!plugin_name_valid(decl->name)) {
    perr_set(err, "PLUGIN_BAD_NAME",
             "bad plugin name \"%.40s\": must match [a-z0-9][a-z0-9_-]{0,31}",
             decl->name ? decl->name : "");
    return -1;
  }
  char kind_prefix[32];
  snprintf(kind_prefix, sizeof(kind_prefix), "%s-", kind ? kind : "");
  for (size_t i = 0; i < cfg->n_plugin_path; i++) {
    const char *dir = cfg->plugin_path[i];
    if (try_candidate(out, out_len, dir, "", decl->name) ||
        try_candidate(out, out_len, dir, kind_prefix, decl->name))
      return 0;
  }
  perr_set(err, "PLUGIN_NOT_FOUND",
           "%s plugin \"%s\" not found: no %s.so or %s%s.so in "
           "plugin_path (%zu director%s)",
           kind ? kind : "?", decl->name, decl->name, kind_prefix,
           decl->name, cfg->n_plugin_path,
           cfg->n_plugin_path == 1 ? "y" : "ies");
  return -1;
}
