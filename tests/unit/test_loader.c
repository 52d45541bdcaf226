/* Plugin loader, instance registry and host services, against the real
 * test plugins in build/tests/plugins (PROVD_TEST_PLUGIN_DIR) and real
 * YAML configs written to a temporary directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "plugin/loader.h"
#include "plugin/loader_int.h"
#include "provd/host.h"
#include "util/log.h"
#include "util/metrics.h"

/* "1.<minor>": what the loader logs for plugins built with this SDK. */
#define ABI_STR_(x) #x
#define ABI_STR(x) ABI_STR_(x)
#define ABI_TEXT ABI_STR(PROVD_ABI_MAJOR) "." ABI_STR(PROVD_ABI_MINOR)

static char plugin_dir[1024];
static char tmp[256];

static void setup(void)
{
  const char *dir = getenv("PROVD_TEST_PLUGIN_DIR");
  ck_assert_msg(dir && dir[0], "PROVD_TEST_PLUGIN_DIR is not set");
  snprintf(plugin_dir, sizeof(plugin_dir), "%s", dir);
  snprintf(tmp, sizeof(tmp), "/tmp/provd-test-loader-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  ck_assert_int_eq(system(cmd), 0);
}

static void path_in(char *out, size_t len, const char *dir, const char *name)
{
  int n = snprintf(out, len, "%s/%s", dir, name);
  ck_assert(n > 0 && (size_t)n < len);
}

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}

/* Whole file, caller frees; "" when it does not exist. */
static char *read_text(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return strdup("");
  char *buf = calloc(1, 65536);
  ck_assert_ptr_nonnull(buf);
  size_t n = fread(buf, 1, 65535, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* ---- configs ---- */

/* Lines 1-6 are fixed, so the first plugin item is on line 7, column 5.
 * `body` continues the `plugins:` sequence. */
static int load_config(const char *body, struct provd_config *cfg,
                       struct diag *d, char *cfg_path, size_t cfg_path_len)
{
  char yaml[8192];
  int n = snprintf(yaml, sizeof(yaml),
                   "plugin_path: [ \"%s\" ]\n"
                   "data_dir: \"%s/data\"\n"
                   "storage:\n"
                   "  plugin: good_storage\n"
                   "  options: { journal: \"%s/storage.journal\" }\n"
                   "plugins:\n"
                   "%s",
                   plugin_dir, tmp, tmp, body);
  ck_assert(n > 0 && (size_t)n < sizeof(yaml));
  path_in(cfg_path, cfg_path_len, tmp, "provd.yaml");
  write_text(cfg_path, yaml);
  return config_load(cfg_path, cfg, d);
}

static const char *diag_text(const struct diag *d)
{
  static char all[8192];
  all[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < d->n && used < sizeof(all) - 1; i++) {
    int n = snprintf(all + used, sizeof(all) - used, "%s\n", d->lines[i]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
  return all;
}

/* ---- plugin_open ---- */

static void expect_open_error(const char *path, const char *want_code,
                              const char *want_msg)
{
  const struct provd_plugin *desc = (const void *)1;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(plugin_open(path, &desc, &err), -1);
  ck_assert_ptr_null(desc);
  ck_assert_str_eq(err.code, want_code);
  ck_assert_str_eq(err.msg, want_msg);
}

START_TEST(open_valid_plugin)
{
  char path[1200];
  const struct provd_plugin *desc = NULL;
  struct provd_err err = {{0}, {0}};
  path_in(path, sizeof(path), plugin_dir, "good_attest.so");
  ck_assert_int_eq(plugin_open(path, &desc, &err), 0);
  ck_assert_ptr_nonnull(desc);
  ck_assert_str_eq(desc->name, "good_attest");
  ck_assert_uint_eq(desc->kind, PROVD_KIND_ATTESTATION);
  ck_assert_uint_eq(desc->abi_major, PROVD_ABI_MAJOR);
  /* Opening twice gives the same descriptor: the library stays loaded. */
  const struct provd_plugin *again = NULL;
  ck_assert_int_eq(plugin_open(path, &again, &err), 0);
  ck_assert_ptr_eq(desc, again);
}
END_TEST

struct open_case {
  const char *file;
  const char *code;
  const char *msg_after_path; /* message text after "PATH: " */
};

static const struct open_case open_cases[] = {
  {"does_not_exist.so", "PLUGIN_NOT_FOUND",
   "cannot open plugin: No such file or directory"},
  {"no_symbol.so", "PLUGIN_NO_SYMBOL",
   "not a provd plugin: symbol provd_plugin_v1 not found"},
  {"bad_magic.so", "PLUGIN_BAD_MAGIC",
   "not a provd plugin: bad magic 0x12345678 (expected 0x31565250)"},
  {"bad_abi_major.so", "PLUGIN_ABI_MISMATCH",
   "built for ABI 2, this provd speaks 1"},
  {"needs_newer_host.so", "PLUGIN_ABI_MISMATCH",
   "needs provd ABI 1.99 or newer, this provd speaks " ABI_TEXT},
  {"bad_name.so", "PLUGIN_BAD_NAME",
   "bad plugin name \"Bad Name\": must match [a-z0-9][a-z0-9_-]{0,31}"},
  {"missing_ops.so", "PLUGIN_MISSING_OPS",
   "plugin \"missing_ops\" (notifier) lacks mandatory op deliver"},
};

START_TEST(open_rejects_broken_plugins)
{
  const struct open_case *c = &open_cases[_i];
  char path[1200], want[1600];
  path_in(path, sizeof(path), plugin_dir, c->file);
  snprintf(want, sizeof(want), "%s: %s", path, c->msg_after_path);
  expect_open_error(path, c->code, want);
}
END_TEST

START_TEST(open_rejects_non_shared_object)
{
  char path[512], want[1024];
  path_in(path, sizeof(path), tmp, "text.so");
  write_text(path, "This is a text file that happens to end in .so; it is "
                   "long enough to have an ELF header, but does not.\n");
  snprintf(want, sizeof(want), "%s: not a shared object: invalid ELF header",
           path);
  expect_open_error(path, "PLUGIN_NOT_LOADABLE", want);
}
END_TEST

START_TEST(open_rejects_directory)
{
  char want[512];
  snprintf(want, sizeof(want), "%s: cannot open plugin: not a regular file",
           tmp);
  expect_open_error(tmp, "PLUGIN_NOT_FOUND", want);
}
END_TEST

START_TEST(open_rejects_unparsable_default)
{
  char path[1200], want[1600];
  const struct provd_plugin *desc = NULL;
  struct provd_err err = {{0}, {0}};
  path_in(path, sizeof(path), plugin_dir, "bad_schema_default.so");
  ck_assert_int_eq(plugin_open(path, &desc, &err), -1);
  ck_assert_str_eq(err.code, "PLUGIN_BAD_SCHEMA");
  snprintf(want, sizeof(want), "%s: bad option schema: ", path);
  ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "got: %s",
                err.msg);
  /* The reason comes from the YAML value rules: it names the option and
   * the text that does not parse. */
  ck_assert_msg(strstr(err.msg + strlen(want), "'count'"), "got: %s",
                err.msg);
  ck_assert_msg(strstr(err.msg + strlen(want), "'abc'"), "got: %s", err.msg);
}
END_TEST

static const char *const no_values[] = {NULL};
static const char *const ab_values[] = {"a", "b", NULL};

struct schema_case {
  struct provd_option opts[3];
  const char *problem; /* NULL: valid */
};

static const struct schema_case schema_cases[] = {
  {{{"ok_name", PROVD_OPT_DURATION, "250ms", 0, "Fine.", NULL},
    {"list", PROVD_OPT_STRING_LIST, NULL, PROVD_OPT_REQUIRED, "Req.", NULL}},
   NULL},
  {{{"BadName", PROVD_OPT_STRING, NULL, 0, "x", NULL}},
   "option 0 ('BadName'): name is not snake_case ([a-z][a-z0-9_]*, at most "
   "63)"},
  {{{"a", PROVD_OPT_STRING, NULL, 0, "x", NULL},
    {"a", PROVD_OPT_INT, NULL, 0, "y", NULL}},
   "option 1 ('a'): declared twice"},
  {{{"quiet", PROVD_OPT_BOOL, NULL, 0, "", NULL}},
   "option 0 ('quiet'): description missing"},
  {{{"what", (enum provd_opt_type)99, NULL, 0, "x", NULL}},
   "option 0 ('what'): unknown type"},
  {{{"mode", PROVD_OPT_ENUM, NULL, 0, "x", no_values}},
   "option 0 ('mode'): enum without enum_values"},
  {{{"mode", PROVD_OPT_ENUM, "a", PROVD_OPT_REQUIRED, "x", ab_values}},
   "option 0 ('mode'): required option has a default"},
  /* Descriptor text is shown on one line, control bytes masked. */
  {{{"two\nlines\x1b[0m", PROVD_OPT_STRING, NULL, 0, "x", NULL}},
   "option 0 ('two?lines?[0m'): name is not snake_case ([a-z][a-z0-9_]*, "
   "at most 63)"},
};

START_TEST(schema_rules)
{
  const struct schema_case *c = &schema_cases[_i];
  struct provd_plugin p = {.name = "t", .options = c->opts};
  struct provd_err err = {{0}, {0}};
  int rc = plugin_check_schema("x.so", &p, &err);
  if (!c->problem) {
    ck_assert_msg(rc == 0, "%s", err.msg);
    return;
  }
  char want[512];
  snprintf(want, sizeof(want), "x.so: bad option schema: plugin 't': %s",
           c->problem);
  ck_assert_int_eq(rc, -1);
  ck_assert_str_eq(err.msg, want);
}
END_TEST

/* ---- names and resolution ---- */

START_TEST(kind_names_round_trip)
{
  static const char *const names[] = {"attestation", "allocation",
                                      "notifier", "hub", "storage"};
  for (int k = PROVD_KIND_ATTESTATION; k <= PROVD_KIND_STORAGE; k++) {
    ck_assert_str_eq(plugin_kind_name((enum provd_kind)k), names[k - 1]);
    ck_assert_int_eq(plugin_kind_parse(names[k - 1]), k);
  }
  ck_assert_int_eq(plugin_kind_parse("attest"), 0);
  ck_assert_int_eq(plugin_kind_parse(NULL), 0);
  ck_assert_ptr_null(plugin_kind_name((enum provd_kind)0));
  ck_assert_ptr_null(plugin_kind_name((enum provd_kind)6));
}
END_TEST

START_TEST(resolve_name_then_kind_name)
{
  char link[512], target[1200], out[1024];
  struct provd_err err = {{0}, {0}};
  char *dirs[] = {tmp, plugin_dir};
  struct provd_config cfg = {0};
  cfg.plugin_path = dirs;
  cfg.n_plugin_path = 2;
  struct cfg_plugin_decl decl = {0};
  decl.kind = PROVD_KIND_ATTESTATION;
  decl.name = "good_attest";

  /* Not in the first directory: found as NAME.so in the second. */
  ck_assert_int_eq(plugin_resolve(&cfg, &decl, out, sizeof(out), &err), 0);
  path_in(target, sizeof(target), plugin_dir, "good_attest.so");
  ck_assert_str_eq(out, target);

  /* KIND-NAME.so in an earlier directory wins over a later NAME.so. */
  path_in(link, sizeof(link), tmp, "attestation-good_attest.so");
  ck_assert_int_eq(symlink(target, link), 0);
  ck_assert_int_eq(plugin_resolve(&cfg, &decl, out, sizeof(out), &err), 0);
  ck_assert_str_eq(out, link);

  /* An explicit path is taken as it is. */
  decl.path = "/opt/x/libmy_attest.so";
  ck_assert_int_eq(plugin_resolve(&cfg, &decl, out, sizeof(out), &err), 0);
  ck_assert_str_eq(out, "/opt/x/libmy_attest.so");

  decl.path = NULL;
  decl.name = "nowhere";
  ck_assert_int_eq(plugin_resolve(&cfg, &decl, out, sizeof(out), &err), -1);
  ck_assert_str_eq(err.msg, "attestation plugin \"nowhere\" not found: no "
                            "nowhere.so or attestation-nowhere.so in "
                            "plugin_path (2 directories)");
}
END_TEST

/* ---- plugins_load ---- */

START_TEST(load_applies_defaults_and_logs)
{
  char cfg_path[512], journal[512], log_path[512], want[2048];
  struct provd_config cfg;
  struct diag d = {0};
  struct plugin_set set = {0};
  path_in(log_path, sizeof(log_path), tmp, "stderr.log");
  int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
  close(fd);
  log_set_level(LOG_INFO);

  ck_assert_int_eq(load_config("  - kind: attestation\n"
                               "    name: good_attest\n"
                               "    options: { retries: 5, timeout: 2m }\n"
                               "  - kind: notifier\n"
                               "    name: good_notifier\n"
                               "    id: ops\n"
                               "    events: [ device.assigned ]\n"
                               "    options: { url: \"https://x.test/h\" }\n",
                               &cfg, &d, cfg_path, sizeof(cfg_path)),
                   0);
  ck_assert_int_eq(plugins_load(&cfg, &set, &d), 0);
  ck_assert_msg(d.n == 0, "%s", diag_text(&d));
  ck_assert_uint_eq(set.n, 3);

  struct plugin_instance *a = plugins_find(&set, PROVD_KIND_ATTESTATION,
                                           "good_attest");
  ck_assert_ptr_nonnull(a);
  ck_assert_str_eq(json_string_value(json_object_get(a->options,
                                                     "greeting")), "hi");
  ck_assert_int_eq(json_integer_value(json_object_get(a->options,
                                                      "retries")), 5);
  ck_assert_int_eq(json_integer_value(json_object_get(a->options,
                                                      "timeout")), 120000);
  ck_assert_str_eq(json_string_value(json_object_get(a->options, "mode")),
                   "safe");
  ck_assert_int_eq(a->pos.line, 7);

  struct plugin_instance *n = plugins_find(&set, PROVD_KIND_NOTIFIER, "ops");
  ck_assert_ptr_nonnull(n);
  ck_assert_str_eq(n->name, "good_notifier");
  ck_assert_uint_eq(n->n_events, 1);
  ck_assert_str_eq(n->events[0], "device.assigned");
  ck_assert_ptr_eq(plugins_find(&set, PROVD_KIND_NOTIFIER, "good_notifier"),
                   n);
  ck_assert_ptr_null(plugins_find(&set, PROVD_KIND_ATTESTATION, "ops"));
  ck_assert_ptr_eq(plugins_nth(&set, PROVD_KIND_NOTIFIER, 0), n);
  ck_assert_ptr_null(plugins_nth(&set, PROVD_KIND_NOTIFIER, 1));
  ck_assert_ptr_eq(plugins_nth(&set, PROVD_KIND_STORAGE, 0), set.items[0]);

  /* Storage got its database under data_dir. */
  path_in(journal, sizeof(journal), tmp, "storage.journal");
  char *text = read_text(journal);
  snprintf(want, sizeof(want), "configure %s/data/provd.db\n", tmp);
  ck_assert_str_eq(text, want);
  free(text);

  plugins_free(&set);
  ck_assert_uint_eq(set.n, 0);
  fflush(stderr);
  text = read_text(log_path);
  snprintf(want, sizeof(want),
           "info  plugin: loaded attestation plugin good_attest (instance "
           "good_attest) version 1.2.3 vendor \"provd tests\" ABI " ABI_TEXT " from "
           "%s/good_attest.so\n",
           plugin_dir);
  ck_assert_msg(strstr(text, want), "log was:\n%s", text);
  snprintf(want, sizeof(want), "loaded notifier plugin good_notifier "
                               "(instance ops) version 0.1");
  ck_assert_msg(strstr(text, want), "log was:\n%s", text);
  free(text);
  diag_free(&d);
  config_free(&cfg);
}
END_TEST

/* Loads body, expects plugins_load to fail, returns the diagnostics. */
static char *load_expect_failure(const char *body, char *cfg_path,
                                 size_t cfg_path_len)
{
  struct provd_config cfg;
  struct diag d = {0};
  struct plugin_set set = {0};
  int rc = load_config(body, &cfg, &d, cfg_path, cfg_path_len);
  ck_assert_msg(rc == 0, "config_load: %s", diag_text(&d));
  ck_assert_int_eq(plugins_load(&cfg, &set, &d), -1);
  ck_assert_uint_ge(d.n, 1);
  char *all = strdup(diag_text(&d));
  plugins_free(&set);
  diag_free(&d);
  config_free(&cfg);
  return all;
}

START_TEST(load_rejects_wrong_kind)
{
  char cfg_path[512], want[2048];
  char *got = load_expect_failure("  - kind: notifier\n"
                                  "    name: good_attest\n",
                                  cfg_path, sizeof(cfg_path));
  snprintf(want, sizeof(want),
           "%s:7:5: %s/good_attest.so: declared as notifier, the file is "
           "an attestation plugin\n",
           cfg_path, plugin_dir);
  ck_assert_str_eq(got, want);
  free(got);
}
END_TEST

START_TEST(load_reports_every_broken_plugin)
{
  char cfg_path[512], want[4096];
  char *got = load_expect_failure("  - kind: notifier\n"
                                  "    name: bad_abi_major\n"
                                  "  - kind: notifier\n"
                                  "    name: no_symbol\n"
                                  "  - kind: hub\n"
                                  "    name: absent\n",
                                  cfg_path, sizeof(cfg_path));
  snprintf(want, sizeof(want),
           "%s:7:5: %s/bad_abi_major.so: built for ABI 2, this provd "
           "speaks 1\n"
           "%s:9:5: %s/no_symbol.so: not a provd plugin: symbol "
           "provd_plugin_v1 not found\n"
           "%s:11:5: hub plugin \"absent\" not found: no absent.so or "
           "hub-absent.so in plugin_path (1 directory)\n",
           cfg_path, plugin_dir, cfg_path, plugin_dir, cfg_path);
  ck_assert_str_eq(got, want);
  free(got);
}
END_TEST

START_TEST(load_rejects_unknown_option_with_position)
{
  char cfg_path[512], want[600];
  char *got = load_expect_failure("  - kind: attestation\n"
                                  "    name: good_attest\n"
                                  "    options:\n"
                                  "      greting: hello\n",
                                  cfg_path, sizeof(cfg_path));
  snprintf(want, sizeof(want), "%s:10:7: ", cfg_path);
  ck_assert_msg(strncmp(got, want, strlen(want)) == 0, "got: %s", got);
  ck_assert_msg(strstr(got, "greting"), "got: %s", got);
  ck_assert_msg(strstr(got, "greeting"), "no did-you-mean hint: %s", got);
  ck_assert_ptr_eq(strchr(got, '\n'), got + strlen(got) - 1); /* 1 line */
  free(got);
}
END_TEST

START_TEST(load_rejects_mistyped_option_with_position)
{
  char cfg_path[512], want[600];
  char *got = load_expect_failure("  - kind: attestation\n"
                                  "    name: good_attest\n"
                                  "    options:\n"
                                  "      greeting: hello\n"
                                  "      retries: many\n",
                                  cfg_path, sizeof(cfg_path));
  snprintf(want, sizeof(want), "%s:11:", cfg_path);
  ck_assert_msg(strncmp(got, want, strlen(want)) == 0, "got: %s", got);
  ck_assert_msg(strstr(got, "retries"), "got: %s", got);
  free(got);
}
END_TEST

START_TEST(load_rejects_missing_required_option)
{
  char cfg_path[512], want[600];
  char *got = load_expect_failure("  - kind: notifier\n"
                                  "    name: good_notifier\n",
                                  cfg_path, sizeof(cfg_path));
  snprintf(want, sizeof(want), "%s:7:5: ", cfg_path);
  ck_assert_msg(strncmp(got, want, strlen(want)) == 0, "got: %s", got);
  ck_assert_msg(strstr(got, "url"), "got: %s", got);
  free(got);
}
END_TEST

START_TEST(load_rejects_duplicate_instance_id)
{
  char cfg_path[512], want[2048];
  struct provd_config cfg;
  struct diag d = {0};
  struct plugin_set set = {0};
  ck_assert_int_eq(load_config("  - kind: attestation\n"
                               "    name: good_attest\n"
                               "    id: one\n"
                               "  - kind: attestation\n"
                               "    name: good_attest\n"
                               "    id: two\n"
                               "  - kind: notifier\n"
                               "    name: good_notifier\n"
                               "    id: one\n"
                               "    options: { url: \"https://x.test\" }\n",
                               &cfg, &d, cfg_path, sizeof(cfg_path)),
                   0);
  /* The config module already refuses duplicates in YAML; the loader
   * checks again for configs assembled in code. */
  free(cfg.plugins[1].id);
  cfg.plugins[1].id = strdup("one");
  ck_assert_int_eq(plugins_load(&cfg, &set, &d), -1);
  snprintf(want, sizeof(want),
           "%s:10:5: duplicate attestation instance id \"one\" (first "
           "declared at %s:7:5); give one of them another `id:`\n",
           cfg_path, cfg_path);
  ck_assert_str_eq(diag_text(&d), want);
  /* Same id, other kind: fine. */
  ck_assert_uint_eq(set.n, 3);
  ck_assert_ptr_nonnull(plugins_find(&set, PROVD_KIND_NOTIFIER, "one"));
  plugins_free(&set);
  diag_free(&d);
  config_free(&cfg);
}
END_TEST

/* ---- lifecycle ---- */

START_TEST(lifecycle_runs_in_order)
{
  char cfg_path[512], journal[512], body[2048];
  struct provd_config cfg;
  struct diag d = {0};
  struct plugin_set set = {0};
  struct provd_err err = {{0}, {0}};
  path_in(journal, sizeof(journal), tmp, "calls");
  snprintf(body, sizeof(body),
           "  - kind: attestation\n"
           "    name: good_attest\n"
           "    id: a\n"
           "    options: { greeting: a, journal: \"%s\" }\n"
           "  - kind: attestation\n"
           "    name: good_attest\n"
           "    id: b\n"
           "    options: { greeting: b, journal: \"%s\" }\n",
           journal, journal);
  ck_assert_int_eq(load_config(body, &cfg, &d, cfg_path, sizeof(cfg_path)),
                   0);
  ck_assert_int_eq(plugins_load(&cfg, &set, &d), 0);
  ck_assert_int_eq(plugins_start(&set, &err), 0);
  ck_assert_int_eq(set.items[1]->started, 1);
  plugins_stop(&set);
  ck_assert_int_eq(set.items[1]->started, 0);
  plugins_stop(&set); /* twice is harmless */
  plugins_free(&set);
  char *text = read_text(journal);
  ck_assert_str_eq(text, "create a\nconfigure a\ncreate b\nconfigure b\n"
                         "start a\nstart b\nstop b\nstop a\n"
                         "destroy b\ndestroy a\n");
  free(text);
  diag_free(&d);
  config_free(&cfg);
}
END_TEST

START_TEST(start_failure_rolls_back)
{
  char cfg_path[512], journal[512], body[2048];
  struct provd_config cfg;
  struct diag d = {0};
  struct plugin_set set = {0};
  struct provd_err err = {{0}, {0}};
  path_in(journal, sizeof(journal), tmp, "calls");
  snprintf(body, sizeof(body),
           "  - kind: attestation\n"
           "    name: good_attest\n"
           "    id: a\n"
           "    options: { greeting: a, journal: \"%s\" }\n"
           "  - kind: attestation\n"
           "    name: good_attest\n"
           "    id: b\n"
           "    options: { greeting: b, journal: \"%s\", fail_at: start }\n",
           journal, journal);
  ck_assert_int_eq(load_config(body, &cfg, &d, cfg_path, sizeof(cfg_path)),
                   0);
  ck_assert_int_eq(plugins_load(&cfg, &set, &d), 0);
  ck_assert_int_eq(plugins_start(&set, &err), -1);
  ck_assert_str_eq(err.code, "TEST_FAILURE");
  ck_assert_str_eq(err.msg, "attestation plugin \"b\": start failed: start "
                            "fails on purpose (dependency unavailable, "
                            "retry later)");
  for (size_t i = 0; i < set.n; i++)
    ck_assert_int_eq(set.items[i]->started, 0);
  plugins_free(&set);
  char *text = read_text(journal);
  ck_assert_str_eq(text, "create a\nconfigure a\ncreate b\nconfigure b\n"
                         "start a\nstart b\nstop a\n"
                         "destroy b\ndestroy a\n");
  free(text);
  diag_free(&d);
  config_free(&cfg);
}
END_TEST

START_TEST(configure_failure_destroys_instance)
{
  char cfg_path[512], journal[512], body[2048], want[2048];
  struct provd_config cfg;
  struct diag d = {0};
  struct plugin_set set = {0};
  path_in(journal, sizeof(journal), tmp, "calls");
  snprintf(body, sizeof(body),
           "  - kind: attestation\n"
           "    name: good_attest\n"
           "    options: { greeting: x, journal: \"%s\", "
           "fail_at: configure }\n",
           journal);
  ck_assert_int_eq(load_config(body, &cfg, &d, cfg_path, sizeof(cfg_path)),
                   0);
  ck_assert_int_eq(plugins_load(&cfg, &set, &d), -1);
  snprintf(want, sizeof(want),
           "%s:7:5: attestation plugin \"good_attest\": configure failed: "
           "configure fails on purpose (invalid configuration)\n",
           cfg_path);
  ck_assert_str_eq(diag_text(&d), want);
  ck_assert_ptr_null(plugins_find(&set, PROVD_KIND_ATTESTATION,
                                  "good_attest"));
  plugins_free(&set);
  char *text = read_text(journal);
  ck_assert_str_eq(text, "create x\nconfigure x\ndestroy x\n");
  free(text);
  diag_free(&d);
  config_free(&cfg);
}
END_TEST

START_TEST(ops_are_serialized_unless_threadsafe)
{
  char path[1200];
  const struct provd_plugin *desc = NULL;
  struct provd_err err = {{0}, {0}};
  path_in(path, sizeof(path), plugin_dir, "good_attest.so");
  ck_assert_int_eq(plugin_open(path, &desc, &err), 0);
  struct plugin_instance inst = {0};
  inst.desc = desc;
  pthread_mutex_init(&inst.op_lock, NULL);
  plugin_op_enter(&inst);
  ck_assert_int_eq(pthread_mutex_trylock(&inst.op_lock), EBUSY);
  plugin_op_leave(&inst);
  ck_assert_int_eq(pthread_mutex_trylock(&inst.op_lock), 0);
  pthread_mutex_unlock(&inst.op_lock);

  struct provd_plugin threadsafe = *desc;
  threadsafe.flags |= PROVD_PLUGIN_THREADSAFE;
  inst.desc = &threadsafe;
  plugin_op_enter(&inst);
  ck_assert_int_eq(pthread_mutex_trylock(&inst.op_lock), 0);
  pthread_mutex_unlock(&inst.op_lock);
  plugin_op_leave(&inst);
  pthread_mutex_destroy(&inst.op_lock);
}
END_TEST

/* ---- host services ---- */

START_TEST(host_cfg_accessors)
{
  const struct provd_host_api *h = host_api();
  ck_assert_uint_eq(h->struct_size, sizeof(struct provd_host_api));
  ck_assert_uint_eq(h->abi_major, PROVD_ABI_MAJOR);
  json_error_t jerr;
  json_t *j = json_loads("{\"s\":\"text\",\"i\":42,\"r\":2.5,\"w\":3.0,"
                         "\"b\":true,\"n\":null,\"o\":{\"k\":\"v\"},"
                         "\"a\":[\"x\",7,false]}",
                         0, &jerr);
  ck_assert_ptr_nonnull(j);
  const struct provd_cfg *c = cfg_from_json(j);
  const char *s = NULL;
  int64_t i = 0;
  int b = 0;
  double dbl = 0;
  const struct provd_cfg *child = NULL, *item = NULL;

  ck_assert_int_eq(h->cfg_str(c, "s", &s), PROVD_OK);
  ck_assert_str_eq(s, "text");
  ck_assert_int_eq(h->cfg_str(c, "i", &s), PROVD_E_INVAL);
  ck_assert_int_eq(h->cfg_str(c, "missing", &s), PROVD_NOT_FOUND);
  ck_assert_int_eq(h->cfg_str(c, "n", &s), PROVD_NOT_FOUND);
  ck_assert_int_eq(h->cfg_int(c, "i", &i), PROVD_OK);
  ck_assert_int_eq(i, 42);
  ck_assert_int_eq(h->cfg_int(c, "w", &i), PROVD_OK);
  ck_assert_int_eq(i, 3);
  ck_assert_int_eq(h->cfg_int(c, "r", &i), PROVD_E_INVAL);
  ck_assert_int_eq(h->cfg_int(c, "s", &i), PROVD_E_INVAL);
  ck_assert_int_eq(h->cfg_bool(c, "b", &b), PROVD_OK);
  ck_assert_int_eq(b, 1);
  ck_assert_int_eq(h->cfg_bool(c, "i", &b), PROVD_E_INVAL);
  ck_assert_int_eq(h->cfg_double(c, "r", &dbl), PROVD_OK);
  ck_assert(dbl == 2.5);
  ck_assert_int_eq(h->cfg_double(c, "i", &dbl), PROVD_OK);
  ck_assert(dbl == 42.0);
  ck_assert_int_eq(h->cfg_double(c, "b", &dbl), PROVD_E_INVAL);

  ck_assert_int_eq(h->cfg_child(c, "o", &child), PROVD_OK);
  ck_assert_int_eq(h->cfg_str(child, "k", &s), PROVD_OK);
  ck_assert_str_eq(s, "v");
  ck_assert_int_eq(h->cfg_child(c, "zz", &child), PROVD_NOT_FOUND);
  ck_assert_uint_eq(h->cfg_count(child), 0); /* not a sequence */

  ck_assert_int_eq(h->cfg_child(c, "a", &child), PROVD_OK);
  ck_assert_uint_eq(h->cfg_count(child), 3);
  ck_assert_int_eq(h->cfg_at(child, 0, &item), PROVD_OK);
  ck_assert_str_eq(h->cfg_text(item), "x");
  ck_assert_int_eq(h->cfg_at(child, 1, &item), PROVD_OK);
  ck_assert_str_eq(h->cfg_text(item), "7");
  ck_assert_int_eq(h->cfg_at(child, 2, &item), PROVD_OK);
  ck_assert_str_eq(h->cfg_text(item), "false");
  ck_assert_int_eq(h->cfg_at(child, 3, &item), PROVD_NOT_FOUND);
  ck_assert_int_eq(h->cfg_at(c, 0, &item), PROVD_E_INVAL);
  ck_assert_ptr_null(h->cfg_text(c)); /* an object has no scalar text */
  ck_assert_int_eq(h->cfg_str(child, "k", &s), PROVD_E_INVAL);
  ck_assert_int_eq(h->cfg_str(NULL, "k", &s), PROVD_E_INVAL);
  json_decref(j);
}
END_TEST

START_TEST(host_result_setters)
{
  const struct provd_host_api *h = host_api();
  struct provd_attest_result r = {0};
  char big[5000];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';

  ck_assert_int_eq(h->attest_set_device_id(&r, "dev-1"), PROVD_OK);
  ck_assert_int_eq(h->attest_set_device_id(&r, "dev-2"), PROVD_OK);
  ck_assert_str_eq(r.device_id, "dev-2");
  ck_assert_int_eq(h->attest_set_device_id(&r, ""), PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_device_id(&r, "has space"), PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_device_id(&r, big), PROVD_E_INVAL);
  ck_assert_str_eq(r.device_id, "dev-2");

  ck_assert_int_eq(h->attest_add_claim(&r, "site", "berlin"), PROVD_OK);
  ck_assert_str_eq(json_string_value(json_object_get(r.claims, "site")),
                   "berlin");
  ck_assert_int_eq(h->attest_add_claim(&r, "site", big), PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_add_claim(&r, "bad", "\xff\xfe"),
                   PROVD_E_INVAL);

  static const uint8_t session[] = {1, 2, 3};
  ck_assert_int_eq(h->attest_set_challenge(&r, "{\"nonce\":\"x\"}", session,
                                           sizeof(session)),
                   PROVD_OK);
  ck_assert_str_eq(r.challenge_json, "{\"nonce\":\"x\"}");
  ck_assert_uint_eq(r.session_len, 3);
  ck_assert_int_eq(memcmp(r.session, session, 3), 0);
  ck_assert_int_eq(h->attest_set_challenge(&r, "{not json", NULL, 0),
                   PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_reuse_until(&r, 1800000000), PROVD_OK);
  ck_assert_int_eq(r.reuse_until_s, 1800000000);
  ck_assert_int_eq(h->attest_set_reuse_until(&r, 0), PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_reuse_until(&r, -5), PROVD_E_INVAL);
  ck_assert_int_eq(r.reuse_until_s, 1800000000);
  /* ABI 1.2: registrationState.<mechanism> and the group match depth */
  ck_assert_int_eq(h->attest_set_state(&r, "x509", "{\"certificateInfo\":{}}"),
                   PROVD_OK);
  ck_assert_str_eq(r.state_key, "x509");
  ck_assert(json_is_object(json_object_get(r.state, "certificateInfo")));
  ck_assert_int_eq(h->attest_set_state(&r, "assignedHub", "{}"),
                   PROVD_E_INVAL); /* only a mechanism's own field */
  ck_assert_int_eq(h->attest_set_state(&r, "tpm", "[1]"), PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_state(&r, "tpm", "{\"a\":1,\"a\":2}"),
                   PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_state(&r, "x509", NULL), PROVD_E_INVAL);
  ck_assert_str_eq(r.state_key, "x509");
  ck_assert_int_eq(h->attest_set_match_depth(&r, 0), PROVD_E_INVAL);
  ck_assert_int_eq(h->attest_set_match_depth(&r, 2), PROVD_OK);
  ck_assert_uint_eq(r.match_depth, 2);
  attest_result_clear(&r);
  ck_assert_ptr_null(r.state);
  ck_assert_uint_eq(r.match_depth, 0);
  ck_assert_ptr_null(r.device_id);
  ck_assert_ptr_null(r.claims);
  ck_assert_int_eq(r.reuse_until_s, 0);

  struct provd_alloc_result ar = {0};
  ck_assert_int_eq(h->alloc_set_hub(&ar, "hub-1", "hashed"), PROVD_OK);
  ck_assert_str_eq(ar.hub, "hub-1");
  ck_assert_str_eq(ar.reason, "hashed");
  ck_assert_int_eq(h->alloc_set_hub(&ar, big, NULL), PROVD_E_INVAL);
  ck_assert_int_eq(h->alloc_set_hub(&ar, "", NULL), PROVD_E_INVAL);
  ck_assert_str_eq(ar.hub, "hub-1");
}
END_TEST

START_TEST(host_misc_services)
{
  const struct provd_host_api *h = host_api();
  struct provd_err err = {{0}, {0}};
  h->err_set(&err, "BAD_SIGNATURE", "sig %d of %s", 2, "x");
  ck_assert_str_eq(err.code, "BAD_SIGNATURE");
  ck_assert_str_eq(err.msg, "sig 2 of x");
  ck_assert_str_eq(h->strstatus(PROVD_NOT_FOUND), "no such record");

  uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
  ck_assert_int_eq(h->random(a, sizeof(a)), PROVD_OK);
  ck_assert_int_eq(h->random(b, sizeof(b)), PROVD_OK);
  ck_assert(memcmp(a, b, sizeof(a)) != 0 && memcmp(a, zero, 32) != 0);

  uint64_t t0 = h->mono_ns(), t1 = h->mono_ns();
  ck_assert_uint_ge(t1, t0);
  ck_assert_int_gt(h->unix_ms(), 1700000000000LL);

  struct provd_call call = {.trace_id = "trace-123", .deadline_ns = 987654321ull};
  ck_assert_str_eq(h->call_trace_id(&call), "trace-123");
  ck_assert_uint_eq(h->call_deadline_ns(&call), 987654321ull);
  ck_assert_uint_eq(h->call_deadline_ns(NULL), 0);

  struct plugin_instance inst = {0};
  inst.id = "ops\"1";
  h->counter_add((struct provd_instance *)&inst, "sent_total", "Sent.", 2);
  h->counter_add((struct provd_instance *)&inst, "sent_total", "Sent.", 1);
  h->counter_add((struct provd_instance *)&inst, "bad name", "x", 1);
  char *text = metrics_render();
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "provd_plugin_sent_total{instance=\"ops\\\"1\"} 3"),
                "%s", text);
  ck_assert_ptr_null(strstr(text, "bad name"));
  free(text);

  log_set_level(LOG_WARN);
  ck_assert_int_eq(h->log_enabled((struct provd_instance *)&inst,
                                  PROVD_LOG_WARN), 1);
  ck_assert_int_eq(h->log_enabled((struct provd_instance *)&inst,
                                  PROVD_LOG_INFO), 0);
}
END_TEST

START_TEST(host_log_tags_instance_and_trace)
{
  char log_path[512];
  path_in(log_path, sizeof(log_path), tmp, "stderr.log");
  int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
  close(fd);
  log_set_level(LOG_INFO);
  const struct provd_host_api *h = host_api();
  struct plugin_instance inst = {0};
  inst.id = "ops-mail";
  struct provd_call call = {.trace_id = "abc123"};
  h->log((struct provd_instance *)&inst, &call, PROVD_LOG_WARN, "sent %d",
         3);
  h->log((struct provd_instance *)&inst, NULL, PROVD_LOG_DEBUG, "hidden");
  char *text = read_text(log_path);
  ck_assert_msg(strstr(text, "warn  plugin:ops-mail: sent 3 trace=abc123\n"),
                "%s", text);
  ck_assert_ptr_null(strstr(text, "hidden"));
  free(text);
}
END_TEST

/* ---- http_request against a real socket on 127.0.0.1 ---- */

struct tiny_server {
  int fd;
  int port;
  const char *reply;   /* sent whole after the request head; NULL: mute */
  size_t reply_len;
  char request[4096];  /* what arrived */
};

static void *serve_one(void *arg)
{
  struct tiny_server *s = arg;
  int c = accept(s->fd, NULL, NULL);
  if (c < 0)
    return NULL;
  size_t got = 0;
  while (got < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
    ssize_t n = read(c, s->request + got, sizeof(s->request) - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
    s->request[got] = '\0';
  }
  if (s->reply) {
    size_t off = 0;
    while (off < s->reply_len) {
      ssize_t n = write(c, s->reply + off, s->reply_len - off);
      if (n <= 0)
        break;
      off += (size_t)n;
    }
  } else {
    usleep(1500 * 1000); /* longer than the client's timeout */
  }
  close(c);
  return NULL;
}

static void server_listen(struct tiny_server *s)
{
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(s->fd, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(listen(s->fd, 4), 0);
  socklen_t len = sizeof(a);
  ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
  s->port = ntohs(a.sin_port);
}

static int http_call(struct tiny_server *s, const char *method,
                     int64_t timeout_ms, struct provd_http_resp *resp)
{
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook?x=1", s->port);
  static const char *const headers[] = {"X-Test: yes", NULL};
  static const uint8_t body[] = "{\"a\":1}";
  struct provd_http_req req = {
    .struct_size = sizeof(req),
    .method = method,
    .url = url,
    .headers = headers,
    .body = strcmp(method, "POST") == 0 ? body : NULL,
    .body_len = strcmp(method, "POST") == 0 ? sizeof(body) - 1 : 0,
    .timeout_ms = timeout_ms,
  };
  struct plugin_instance inst = {0};
  inst.id = "web";
  resp->struct_size = sizeof(*resp);
  return host_api()->http_request((struct provd_instance *)&inst, NULL, &req,
                                  resp);
}

START_TEST(http_request_round_trip)
{
  static const char reply[] = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n"
                              "Connection: close\r\n\r\nhello";
  struct tiny_server s = {.reply = reply, .reply_len = sizeof(reply) - 1};
  server_listen(&s);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, serve_one, &s), 0);
  struct provd_http_resp resp = {0};
  ck_assert_int_eq(http_call(&s, "POST", 0, &resp), PROVD_OK);
  pthread_join(t, NULL);
  close(s.fd);
  ck_assert_int_eq(resp.status, 201);
  ck_assert_uint_eq(resp.body_len, 5);
  ck_assert_int_eq(memcmp(resp.body, "hello", 5), 0);
  ck_assert_msg(strncmp(s.request, "POST /hook?x=1 HTTP/1.1\r\n", 25) == 0,
                "%s", s.request);
  ck_assert_ptr_nonnull(strstr(s.request, "X-Test: yes\r\n"));
}
END_TEST

START_TEST(http_request_times_out)
{
  struct tiny_server s = {.reply = NULL};
  server_listen(&s);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, serve_one, &s), 0);
  struct provd_http_resp resp = {0};
  uint64_t t0 = host_api()->mono_ns();
  ck_assert_int_eq(http_call(&s, "GET", 200, &resp), PROVD_E_TIMEOUT);
  uint64_t took_ms = (host_api()->mono_ns() - t0) / 1000000u;
  ck_assert_uint_lt(took_ms, 1400);
  pthread_join(t, NULL);
  close(s.fd);
}
END_TEST

START_TEST(http_request_caps_body)
{
  size_t big = 1024 * 1024 + 10;
  char head[128];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", big);
  char *reply = malloc((size_t)n + big);
  ck_assert_ptr_nonnull(reply);
  memcpy(reply, head, (size_t)n);
  memset(reply + n, 'z', big);
  struct tiny_server s = {.reply = reply, .reply_len = (size_t)n + big};
  server_listen(&s);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, serve_one, &s), 0);
  struct provd_http_resp resp = {0};
  ck_assert_int_eq(http_call(&s, "GET", 5000, &resp), PROVD_E_UNAVAILABLE);
  ck_assert_int_eq(resp.status, 0);
  pthread_join(t, NULL);
  close(s.fd);
  free(reply);
}
END_TEST

START_TEST(http_request_refuses_bad_input)
{
  struct provd_http_resp resp = {.struct_size = sizeof(resp)};
  struct provd_http_req req = {.struct_size = sizeof(req), .method = "GET",
                               .url = "file:///etc/passwd"};
  const struct provd_host_api *h = host_api();
  ck_assert_int_eq(h->http_request(NULL, NULL, &req, &resp),
                   PROVD_E_UNAVAILABLE);
  req.method = NULL;
  ck_assert_int_eq(h->http_request(NULL, NULL, &req, &resp), PROVD_E_INVAL);
  /* CR/LF would smuggle a header or a second request onto the wire. */
  req.url = "http://127.0.0.1:1/";
  req.method = "GET\r\nX: 1\r\n";
  ck_assert_int_eq(h->http_request(NULL, NULL, &req, &resp), PROVD_E_INVAL);
  req.method = "GET";
  const char *const smuggling[] = {"X-A: 1\r\nX-B: 2", NULL};
  req.headers = smuggling;
  ck_assert_int_eq(h->http_request(NULL, NULL, &req, &resp), PROVD_E_INVAL);
  req.headers = NULL;
  struct provd_call expired = {.trace_id = "t", .deadline_ns = 1}; /* deadline long past */
  ck_assert_int_eq(h->http_request(NULL, &expired, &req, &resp),
                   PROVD_E_TIMEOUT);
}
END_TEST

static Suite *loader_suite(void)
{
  Suite *s = suite_create("loader");
  TCase *open = tcase_create("open");
  tcase_add_checked_fixture(open, setup, teardown);
  tcase_add_test(open, open_valid_plugin);
  tcase_add_loop_test(open, open_rejects_broken_plugins, 0,
                      sizeof(open_cases) / sizeof(open_cases[0]));
  tcase_add_test(open, open_rejects_non_shared_object);
  tcase_add_test(open, open_rejects_directory);
  tcase_add_test(open, open_rejects_unparsable_default);
  tcase_add_loop_test(open, schema_rules, 0,
                      sizeof(schema_cases) / sizeof(schema_cases[0]));
  tcase_add_test(open, kind_names_round_trip);
  tcase_add_test(open, resolve_name_then_kind_name);
  suite_add_tcase(s, open);

  TCase *load = tcase_create("load");
  tcase_add_checked_fixture(load, setup, teardown);
  tcase_add_test(load, load_applies_defaults_and_logs);
  tcase_add_test(load, load_rejects_wrong_kind);
  tcase_add_test(load, load_reports_every_broken_plugin);
  tcase_add_test(load, load_rejects_unknown_option_with_position);
  tcase_add_test(load, load_rejects_mistyped_option_with_position);
  tcase_add_test(load, load_rejects_missing_required_option);
  tcase_add_test(load, load_rejects_duplicate_instance_id);
  tcase_add_test(load, lifecycle_runs_in_order);
  tcase_add_test(load, start_failure_rolls_back);
  tcase_add_test(load, configure_failure_destroys_instance);
  tcase_add_test(load, ops_are_serialized_unless_threadsafe);
  suite_add_tcase(s, load);

  TCase *host = tcase_create("host");
  tcase_add_checked_fixture(host, setup, teardown);
  tcase_add_test(host, host_cfg_accessors);
  tcase_add_test(host, host_result_setters);
  tcase_add_test(host, host_misc_services);
  tcase_add_test(host, host_log_tags_instance_and_trace);
  tcase_add_test(host, http_request_round_trip);
  tcase_add_test(host, http_request_times_out);
  tcase_add_test(host, http_request_caps_body);
  tcase_add_test(host, http_request_refuses_bad_input);
  suite_add_tcase(s, host);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(loader_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
