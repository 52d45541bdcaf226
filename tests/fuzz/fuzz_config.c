/* libFuzzer target over the YAML configuration (core/config): the input is
 * a config file for config_load(), and separately a plugin `options:`
 * subtree for config_check_options() against a schema that uses every
 * option type.  Besides "no crash, no leak" it checks the contract:
 *  - config_load succeeds exactly when it reported nothing, and a failed
 *    load leaves nothing behind;
 *  - every plugin of a loaded config has a name and an id;
 *  - config_check_options succeeds exactly when it reported nothing (or
 *    the problem was reported while parsing) and then returns an object
 *    whose redacted rendering shows every sensitive option as "***".
 *
 * config_load() takes a path, so the input goes into one memfd per
 * process, rewritten each run and read back through /proc/self/fd/N.
 * ${NAME} references read the environment: LLVMFuzzerInitialize replaces
 * it with a fixed one so that runs do not depend on the caller's shell. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "config/tree.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PLUGINS 8 /* plugin option subtrees checked per input */

static const char *const modes[] = {"fast", "safe", NULL};
/* Every enum provd_opt_type and every flag, with and without defaults. */
static const struct provd_option all_types_schema[] = {
    {"url", PROVD_OPT_URL, NULL, 0, "Server URL.", NULL},
    {"timeout", PROVD_OPT_DURATION, "30s", 0, "Timeout.", NULL},
    {"max_size", PROVD_OPT_SIZE, "16KiB", 0, "Largest message.", NULL},
    {"retries", PROVD_OPT_INT, "3", 0, "Attempts.", NULL},
    {"ratio", PROVD_OPT_DOUBLE, "0.5", 0, "A ratio.", NULL},
    {"verbose", PROVD_OPT_BOOL, "off", 0, "Chatty.", NULL},
    {"mode", PROVD_OPT_ENUM, "safe", 0, "Mode.", modes},
    {"ca", PROVD_OPT_PATH, NULL, 0, "CA file.", NULL},
    {"to", PROVD_OPT_STRING_LIST, "[ a@example.net ]", 0, "Recipients.",
     NULL},
    {"password", PROVD_OPT_STRING, NULL, PROVD_OPT_SENSITIVE, "Secret.",
     NULL},
    {"extra", PROVD_OPT_NODE, NULL, 0, "Anything.", NULL},
    {"pin", PROVD_OPT_INT, NULL, PROVD_OPT_SENSITIVE, "A PIN.", NULL},
    {"old_timeout", PROVD_OPT_DURATION, NULL, PROVD_OPT_DEPRECATED,
     "Use timeout.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL}};
/* Required options make most inputs fail, so they get their own schema. */
static const struct provd_option required_schema[] = {
    {"url", PROVD_OPT_URL, NULL, PROVD_OPT_REQUIRED, "Server URL.", NULL},
    {"conninfo", PROVD_OPT_STRING, NULL,
     PROVD_OPT_SENSITIVE | PROVD_OPT_REQUIRED, "Connection string.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL}};

/* The whole environment ${NAME} can see (sanitizer options are kept so
 * that libFuzzer's child processes still get them). */
static const char *const fixed_env[][2] = {
    {"PATH", "/usr/bin:/bin"},
    {"PROVD_DEPLOYER_KEY", "c2VjcmV0LWtleS0xMjM0NTY3OA=="},
    {"PROVD_PG_CONNINFO", "host=/tmp dbname=provd"},
    {"PROVD_TEST_SCOPE", "0ne00000001"},
    {"PROVD_TEST_PORT", "8443"},
    {"PROVD_TEST_DIR", "/tmp/provd-fuzz"},
};
static const char *const kept_env[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS",
                                       "LSAN_OPTIONS"};

static int input_fd = -1;
static char input_path[64];

static void require(int ok)
{
  if (!ok)
    abort();
}

static void fix_environment(void)
{
  size_t n_kept = sizeof(kept_env) / sizeof(kept_env[0]);
  char *kept[sizeof(kept_env) / sizeof(kept_env[0])];
  for (size_t i = 0; i < n_kept; i++) {
    const char *v = getenv(kept_env[i]);
    kept[i] = v ? strdup(v) : NULL;
  }
  require(clearenv() == 0);
  for (size_t i = 0; i < n_kept; i++) {
    if (kept[i])
      require(setenv(kept_env[i], kept[i], 1) == 0);
    free(kept[i]);
  }
  for (size_t i = 0; i < sizeof(fixed_env) / sizeof(fixed_env[0]); i++)
    require(setenv(fixed_env[i][0], fixed_env[i][1], 1) == 0);
}

/* A file only this process sees; a temp file when memfd is missing. */
static void open_input_file(void)
{
  input_fd = memfd_create("provd-fuzz-config", MFD_CLOEXEC);
  if (input_fd < 0) {
    char tmpl[] = "/tmp/provd-fuzz-config-XXXXXX";
    input_fd = mkstemp(tmpl);
    require(input_fd >= 0);
    unlink(tmpl); /* still reachable through /proc/self/fd */
  }
  snprintf(input_path, sizeof(input_path), "/proc/self/fd/%d", input_fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  fix_environment();
  open_input_file();
  return 0;
}

static void write_input(const uint8_t *data, size_t size)
{
  if (input_fd < 0) /* a driver that skipped LLVMFuzzerInitialize */
    LLVMFuzzerInitialize(NULL, NULL);
  require(ftruncate(input_fd, 0) == 0);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(input_fd, data + done, size - done, (off_t)done);
    require(n > 0);
    done += (size_t)n;
  }
}

/* The redacted rendering must hide every sensitive option that is set. */
static void check_redacted(const struct provd_option *schema,
                           const json_t *opts)
{
  char *text = config_redact_options(schema, opts);
  require(text != NULL);
  json_error_t jerr;
  json_t *shown = json_loads(text, 0, &jerr);
  require(json_is_object(shown));
  for (size_t i = 0; schema[i].name; i++) {
    if (!(schema[i].flags & PROVD_OPT_SENSITIVE) ||
        !json_object_get(opts, schema[i].name))
      continue;
    const char *v = json_string_value(json_object_get(shown, schema[i].name));
    require(v && strcmp(v, "***") == 0);
  }
  json_decref(shown);
  free(text);
}

/* tree_errors: the tree had problems, already reported while parsing
 * (config_check_options fails on those scalars without a new message). */
static void check_against(const struct provd_option *schema,
                          const struct cfg_node *options,
                          const struct cfg_pos *where, int tree_errors)
{
  struct diag d = {0};
  json_t *out = NULL;
  int rc = config_check_options(schema, options, where, "fuzz", &out, &d);
  require(rc == 0 ? d.n == 0 : d.n > 0 || tree_errors);
  require((rc == 0) == (out != NULL));
  if (rc == 0) {
    require(json_is_object(out));
    check_redacted(schema, out);
  }
  json_decref(out);
  diag_free(&d);
}

static void check_options(const struct cfg_node *options,
                          const struct cfg_pos *where, int tree_errors)
{
  check_against(all_types_schema, options, where, tree_errors);
  check_against(required_schema, options, where, tree_errors);
}

static void check_loaded(const struct provd_config *cfg)
{
  require(cfg->root != NULL || cfg->n_plugins == 0);
  check_options(cfg->storage.options, &cfg->storage.pos, 0);
  for (size_t i = 0; i < cfg->n_plugins; i++) {
    const struct cfg_plugin_decl *p = &cfg->plugins[i];
    require(p->name && p->id);
    if (i < FUZZ_MAX_PLUGINS)
      check_options(p->options, &p->pos, 0);
  }
}

static void fuzz_config_load(const uint8_t *data, size_t size)
{
  write_input(data, size);
  struct provd_config cfg;
  struct diag d = {0};
  int rc = config_load(input_path, &cfg, &d);
  require((rc == 0) == (d.n == 0));
  if (rc == 0) {
    check_loaded(&cfg);
  } else {
    require(cfg.root == NULL && cfg.file == NULL && cfg.plugins == NULL);
  }
  config_free(&cfg);
  diag_free(&d);
}

/* The input as an `options:` subtree on its own, so option checking is
 * reached without a whole valid config around it. */
static void fuzz_options(const uint8_t *data, size_t size)
{
  static const struct cfg_pos where = {"fuzz-options.yaml", 1, 1};
  struct cfg_node *root = NULL;
  struct diag d = {0};
  int rc = cfg_tree_parse((const char *)data, size, where.file, &root, &d);
  if (rc >= 0) {
    require(rc == 0 || d.n > 0);
    check_options(root, &where, rc > 0);
  } else {
    require(root == NULL && d.n > 0);
  }
  cfg_tree_free(root);
  diag_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > CFG_MAX_FILE + 1)
    return 0;
  fuzz_config_load(data, size);
  fuzz_options(data, size);
  return 0;
}
