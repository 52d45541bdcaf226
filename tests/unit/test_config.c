/* core/config: YAML loading, the core schema, diagnostics, and plugin
 * option checks.  Runs in tests/data (CTest's working directory), so
 * fixtures are named config/<file>.yaml. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/permissions.h"
#include "config/tree.h"
#include "util/log.h"

/* ---- helpers ---- */

/* Loads a file that must fail and returns its first diagnostic (caller
 * frees) and the number of diagnostics. */
static char *first_error(const char *path, size_t *count)
{
  struct provd_config cfg;
  struct diag d = {0};
  ck_assert_msg(config_load(path, &cfg, &d) == -1, "%s loaded", path);
  ck_assert_msg(d.n > 0, "%s: no diagnostic", path);
  char *first = strdup(d.lines[0]);
  if (count)
    *count = d.n;
  ck_assert_ptr_null(cfg.root); /* failure leaves nothing to free */
  config_free(&cfg);
  diag_free(&d);
  return first;
}

static void load_ok(const char *path, struct provd_config *cfg)
{
  struct diag d = {0};
  int rc = config_load(path, cfg, &d);
  ck_assert_msg(rc == 0, "%s: %s", path, d.n ? d.lines[0] : "(no message)");
  ck_assert_uint_eq(d.n, 0);
  diag_free(&d);
}

/* ---- a full file ---- */

START_TEST(test_good_file_every_field)
{
  struct provd_config cfg;
  load_ok("config/good.yaml", &cfg);
  ck_assert_str_eq(cfg.file, "config/good.yaml");
  ck_assert_str_eq(cfg.id_scope, "0ne0000ABCD");
  ck_assert_str_eq(cfg.https.host, "0.0.0.0");
  ck_assert_int_eq(cfg.https.port, 9443);
  ck_assert_int_eq(cfg.has_mqtt, 1);
  ck_assert_str_eq(cfg.mqtt.host, "::1");
  ck_assert_int_eq(cfg.mqtt.port, 8884);
  ck_assert_str_eq(cfg.data_dir, "/tmp/provd-test-data");
  ck_assert_str_eq(cfg.tls_cert, "config/dummy-cert.pem");
  ck_assert_str_eq(cfg.tls_key, "config/dummy-key.pem");

  ck_assert_int_eq(cfg.storage.kind, PROVD_KIND_STORAGE);
  ck_assert_str_eq(cfg.storage.name, "postgres");
  ck_assert_str_eq(cfg.storage.id, "postgres");
  ck_assert_str_eq(cfg.storage.path, "/opt/provd/libpg.so");
  ck_assert_ptr_nonnull(cfg.storage.options);
  ck_assert_int_eq(cfg.storage.pos.line, 11); /* first key of the block */
  ck_assert_int_eq(cfg.storage.pos.col, 3);
  ck_assert_int_eq(cfg_node_pos(cfg.storage.options)->line, 13);
  ck_assert_int_eq(cfg_node_pos(cfg.storage.options)->col, 12);

  ck_assert_uint_eq(cfg.n_plugin_path, 2);
  ck_assert_str_eq(cfg.plugin_path[0], "build/plugins");
  ck_assert_str_eq(cfg.plugin_path[1], "/usr/lib/provd/plugins");
  ck_assert_int_eq(cfg.workers, 4);
  ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
  ck_assert_uint_eq(cfg.max_body_bytes, 1024 * 1024);
  ck_assert_int_eq(cfg.retry_after_s, 30);

  ck_assert_uint_eq(cfg.n_policies, 2);
  ck_assert_str_eq(cfg.policies[0].name, "backend-ro");
  ck_assert_str_eq(cfg.policies[0].key, "c2VjcmV0LWtleS0xMjM0NTY3OA==");
  ck_assert_uint_eq(cfg.policies[0].permissions, PERM_ACCESS_READ);
  ck_assert_str_eq(cfg.policies[1].name, "backend-rw");
  /* from config/policy.key, trailing newline removed */
  ck_assert_str_eq(cfg.policies[1].key, "a2V5LWZyb20tYS1maWxlLTEyMzQ1Ng==");
  ck_assert_uint_eq(cfg.policies[1].permissions, PERM_ALL);
  ck_assert_int_eq(cfg.policies[1].pos.line, 21);
  ck_assert_int_eq(cfg.policies[1].pos.col, 5);

  ck_assert_uint_eq(cfg.n_hubs, 3);
  ck_assert_str_eq(cfg.hubs[0].name, "hub-1");
  ck_assert_str_eq(cfg.hubs[0].hostname, "hub-1.example.net");
  ck_assert_int_eq(cfg.hubs[0].weight, 1);
  ck_assert_str_eq(cfg.hubs[1].name, "hub-2");
  ck_assert_int_eq(cfg.hubs[1].weight, 1); /* default */
  ck_assert_str_eq(cfg.hubs[2].hostname, "hub-3.example.net");
  ck_assert_int_eq(cfg.hubs[2].weight, 1000);
  ck_assert_str_eq(cfg.hubs[2].pos.file, "config/good.yaml");
  ck_assert_int_eq(cfg.hubs[2].pos.line, 27);
  ck_assert_int_eq(cfg.hubs[2].pos.col, 5);

  ck_assert_uint_eq(cfg.n_plugins, 5);
  ck_assert_int_eq(cfg.plugins[0].kind, PROVD_KIND_ATTESTATION);
  ck_assert_str_eq(cfg.plugins[0].name, "symmetric-key");
  ck_assert_str_eq(cfg.plugins[0].id, "symmetric-key"); /* id = name */
  ck_assert_ptr_null(cfg.plugins[0].path);
  ck_assert_ptr_null(cfg.plugins[0].options);
  ck_assert_int_eq(cfg.plugins[1].kind, PROVD_KIND_ALLOCATION);
  ck_assert_str_eq(cfg.plugins[1].name, "hashed");
  const struct cfg_plugin_decl *mail = &cfg.plugins[2];
  ck_assert_int_eq(mail->kind, PROVD_KIND_NOTIFIER);
  ck_assert_str_eq(mail->name, "smtp");
  ck_assert_str_eq(mail->id, "ops-mail");
  ck_assert_uint_eq(mail->n_events, 2);
  ck_assert_str_eq(mail->events[0], "enrollment.created");
  ck_assert_str_eq(mail->events[1], "device.assigned");
  ck_assert_ptr_nonnull(mail->options);
  ck_assert_int_eq(mail->pos.line, 33);
  ck_assert_int_eq(mail->pos.col, 5);
  ck_assert_str_eq(cfg.plugins[3].id, "sales-mail");
  ck_assert_str_eq(cfg.plugins[3].path, "/opt/x/libmy.so");
  ck_assert_uint_eq(cfg.plugins[3].n_events, 0);
  ck_assert_int_eq(cfg.plugins[4].kind, PROVD_KIND_HUB);
  ck_assert_ptr_nonnull(cfg.root);
  config_free(&cfg);
  ck_assert_ptr_null(cfg.root);
  config_free(&cfg); /* harmless twice */
}
END_TEST

static void assert_defaults(const struct provd_config *cfg)
{
  ck_assert_str_eq(cfg->id_scope, "0ne00000001");
  ck_assert_str_eq(cfg->https.host, "127.0.0.1");
  ck_assert_int_eq(cfg->https.port, 8443);
  ck_assert_int_eq(cfg->has_mqtt, 0);
  ck_assert_str_eq(cfg->data_dir, "var");
  ck_assert_ptr_null(cfg->tls_cert);
  ck_assert_ptr_null(cfg->tls_key);
  ck_assert_int_eq(cfg->storage.kind, PROVD_KIND_STORAGE);
  ck_assert_str_eq(cfg->storage.name, "sqlite");
  ck_assert_str_eq(cfg->storage.id, "sqlite");
  ck_assert_ptr_null(cfg->storage.path);
  ck_assert_ptr_null(cfg->storage.options);
  ck_assert_uint_eq(cfg->n_plugin_path, 1);
  /* Beside this test binary there is no plugins/ folder: the installed
   * layout's, relative to the binary, never the working directory. */
  char exe[PATH_MAX], expected[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ck_assert_int_gt(n, 0);
  exe[n] = '\0';
  ck_assert_int_eq(config_default_plugin_dir(exe, expected, sizeof(expected)),
                   0);
  ck_assert_str_eq(cfg->plugin_path[0], expected);
  ck_assert_msg(expected[0] == '/', "%s is relative", expected);
  ck_assert_int_eq(cfg->workers, 0);
  ck_assert_int_eq(cfg->log_level, LOG_INFO);
  ck_assert_uint_eq(cfg->max_body_bytes, 96 * 1024);
  ck_assert_int_eq(cfg->retry_after_s, 1);
  ck_assert_uint_eq(cfg->n_plugins, 0);
  ck_assert_uint_eq(cfg->n_policies, 0);
  ck_assert_int_eq(cfg->max_service_token_lifetime_s, 3600);
}

START_TEST(test_defaults_when_absent)
{
  struct provd_config cfg;
  load_ok("config/minimal.yaml", &cfg);
  assert_defaults(&cfg);
  /* no storage: key, yet the loader's storage errors can name the file */
  ck_assert_str_eq(cfg.storage.pos.file, "config/minimal.yaml");
  ck_assert_int_eq(cfg.storage.pos.line, 0);
  ck_assert_uint_eq(cfg.n_hubs, 1);
  ck_assert_str_eq(cfg.hubs[0].name, "only");
  ck_assert_int_eq(cfg.hubs[0].weight, 1);
  config_free(&cfg);

  load_ok("config/empty.yaml", &cfg);
  assert_defaults(&cfg);
  ck_assert_uint_eq(cfg.n_hubs, 0);
  config_free(&cfg);
}
END_TEST

START_TEST(test_config_defaults)
{
  struct provd_config cfg;
  config_defaults(&cfg);
  assert_defaults(&cfg);
  ck_assert_ptr_null(cfg.file);
  ck_assert_ptr_null(cfg.root);
  config_free(&cfg);
}
END_TEST

static void make_dir(const char *root, const char *sub)
{
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", root, sub);
  ck_assert_msg(mkdir(path, 0700) == 0, "mkdir %s", path);
}

/* A build tree keeps plugins/ beside provd; an installed provd finds
 * PREFIX/lib/provd/plugins from PREFIX/bin/provd. */
START_TEST(test_default_plugin_dir)
{
  char root[] = "/tmp/provd-plugin-dir.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(root));
  char exe[PATH_MAX], out[PATH_MAX], want[PATH_MAX];
  snprintf(exe, sizeof(exe), "%s/bin/provd", root);
  make_dir(root, "bin");

  ck_assert_int_eq(config_default_plugin_dir(exe, out, sizeof(out)), 0);
  snprintf(want, sizeof(want), "%s/bin/../lib/provd/plugins", root);
  ck_assert_str_eq(out, want); /* not there yet: shown as computed */

  make_dir(root, "lib");
  make_dir(root, "lib/provd");
  make_dir(root, "lib/provd/plugins");
  ck_assert_int_eq(config_default_plugin_dir(exe, out, sizeof(out)), 0);
  snprintf(want, sizeof(want), "%s/lib/provd/plugins", root);
  ck_assert_str_eq(out, want);

  make_dir(root, "bin/plugins");
  ck_assert_int_eq(config_default_plugin_dir(exe, out, sizeof(out)), 0);
  snprintf(want, sizeof(want), "%s/bin/plugins", root);
  ck_assert_str_eq(out, want);

  char small[8];
  ck_assert_int_eq(config_default_plugin_dir(exe, small, sizeof(small)), -1);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_env_expansion)
{
  struct provd_config cfg;
  setenv("PROVD_TEST_SCOPE", "0neFROMENV", 1);
  setenv("PROVD_TEST_PORT", "9555", 1);
  setenv("PROVD_TEST_DIR", "/srv/provd", 1);
  load_ok("config/env.yaml", &cfg);
  ck_assert_str_eq(cfg.id_scope, "0neFROMENV");
  ck_assert_int_eq(cfg.https.port, 9555);
  ck_assert_str_eq(cfg.data_dir, "/srv/provd/data");
  ck_assert_str_eq(cfg.hubs[0].hostname, "${literal}.example.net");
  ck_assert_str_eq(cfg.hubs[1].hostname, "price-$5.example.net");
  config_free(&cfg);

  /* The expanded text is checked like any other value. */
  setenv("PROVD_TEST_PORT", "99999", 1);
  char *first = first_error("config/env.yaml", NULL);
  ck_assert_str_eq(first, "config/env.yaml:2:18: listen.https: bad address "
                          "'127.0.0.1:99999': port must be a number 0..65535");
  free(first);
}
END_TEST

/* A config from text, through a temp file. */
static void load_text(const char *yaml, struct provd_config *cfg)
{
  char path[] = "/tmp/provd-test-config-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
  close(fd);
  load_ok(path, cfg);
  unlink(path);
}

/* What SIGHUP reports as needing a restart: the changed sections. */
START_TEST(test_changed_sections)
{
  struct provd_config a, b;
  load_text("id_scope: 0ne00000001\nworkers: 2\nlog_level: info\n"
            "listen: { https: \"127.0.0.1:8443\" }\n", &a);
  load_text("# a comment moves positions, not meaning\n"
            "id_scope: 0ne00000001\nlog_level: debug\nworkers: 3\n"
            "listen: { https: \"127.0.0.1:8443\" }\n"
            "limits: { max_body: 64KiB }\n", &b);
  char out[256];
  static const char *const skip_log[] = {"log_level", NULL};
  ck_assert_uint_eq(config_changed_sections(&a, &b, skip_log, out,
                                            sizeof(out)), 2);
  ck_assert_str_eq(out, "workers, limits");
  ck_assert_uint_eq(config_changed_sections(&a, &b, NULL, out, sizeof(out)),
                    3);
  ck_assert_str_eq(out, "workers, log_level, limits");
  ck_assert_int_eq(config_section_changed(&a, &b, "listen"), 0);
  ck_assert_int_eq(config_section_changed(&a, &b, "id_scope"), 0);
  ck_assert_uint_eq(config_changed_sections(&a, &a, NULL, out, sizeof(out)),
                    0);
  ck_assert_str_eq(out, "");
  config_free(&a);
  config_free(&b);
}
END_TEST

/* A config from text that must fail: its first diagnostic (caller
 * frees), the temp file's name replaced by "F". */
static char *first_error_text(const char *yaml)
{
  char path[] = "/tmp/provd-test-config-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
  close(fd);
  char *first = first_error(path, NULL);
  unlink(path);
  size_t n = strlen(path);
  ck_assert_int_eq(strncmp(first, path, n), 0);
  first[0] = 'F';
  memmove(first + 1, first + n, strlen(first + n) + 1);
  return first;
}

#define POLICY_KEY "c2VjcmV0LWtleS0xMjM0NTY3OA=="

/* service_policies[].permissions: DPS's five names, as a list or as one
 * ARM-style string; access: read / read-write stay as names of sets. */
START_TEST(test_policy_permissions)
{
  struct provd_config cfg;
  load_text("service_policies:\n"
            "  - { name: a, key: " POLICY_KEY ", permissions: "
            "[ EnrollmentRead ] }\n"
            "  - { name: b, key: " POLICY_KEY ", permissions: "
            "\"RegistrationStatusRead, registrationstatuswrite\" }\n"
            "  - { name: c, key: " POLICY_KEY ", permissions: [ ServiceConfig,"
            " EnrollmentRead, EnrollmentWrite, RegistrationStatusRead,"
            " RegistrationStatusWrite ] }\n"
            "  - { name: d, key: " POLICY_KEY ", access: read }\n"
            "limits: { max_service_token_lifetime: 24h }\n",
            &cfg);
  ck_assert_uint_eq(cfg.n_policies, 4);
  ck_assert_uint_eq(cfg.policies[0].permissions, PERM_ENROLLMENT_READ);
  ck_assert_uint_eq(cfg.policies[1].permissions,
                    PERM_REGISTRATION_READ | PERM_REGISTRATION_WRITE);
  ck_assert_uint_eq(cfg.policies[2].permissions, PERM_ALL);
  ck_assert_uint_eq(cfg.policies[3].permissions,
                    PERM_ENROLLMENT_READ | PERM_REGISTRATION_READ);
  ck_assert_int_eq(cfg.max_service_token_lifetime_s, 24 * 3600);
  config_free(&cfg);

  static const struct {
    const char *yaml, *first;
  } bad[] = {
      {"service_policies:\n  - { name: a, key: " POLICY_KEY
       ", permissions: [ EnrollmentReed ] }\n",
       "F:2:66: service_policies[0].permissions: unknown permission "
       "'EnrollmentReed' (did you mean 'EnrollmentRead'?) (DPS names: "
       "ServiceConfig, EnrollmentRead, EnrollmentWrite, "
       "RegistrationStatusRead, RegistrationStatusWrite)"},
      {"service_policies:\n  - { name: a, key: " POLICY_KEY
       ", permissions: [] }\n",
       "F:2:64: service_policies[0].permissions: names no permission"},
      {"service_policies:\n  - { name: a, key: " POLICY_KEY
       ", access: read, permissions: [ EnrollmentRead ] }\n",
       "F:2:51: service_policies[0]: give either 'permissions' or 'access', "
       "not both"},
      {"service_policies:\n  - { name: a, key: " POLICY_KEY " }\n",
       "F:2:5: service_policies[0]: missing required key 'permissions' (or "
       "'access')"},
      {"limits: { max_service_token_lifetime: 10s }\n",
       "F:1:39: limits.max_service_token_lifetime: 10000 ms is out of range "
       "60000..31622400000"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *first = first_error_text(bad[i].yaml);
    ck_assert_str_eq(first, bad[i].first);
    free(first);
  }
}
END_TEST

/* The names the config, the 403 answers and GET /policy share. */
START_TEST(test_permission_names)
{
  char out[160];
  ck_assert_uint_eq(service_permission_by_name("EnrollmentWrite"),
                    PERM_ENROLLMENT_WRITE);
  ck_assert_uint_eq(service_permission_by_name("serviceconfig"),
                    PERM_SERVICE_CONFIG);
  ck_assert_uint_eq(service_permission_by_name("Enrollment"), 0);
  ck_assert_uint_eq(service_permission_by_name(NULL), 0);
  ck_assert_uint_eq(service_access_by_name("read"), PERM_ACCESS_READ);
  ck_assert_uint_eq(service_access_by_name("read-write"), PERM_ALL);
  ck_assert_uint_eq(service_access_by_name("write"), 0);
  ck_assert_str_eq(service_permission_name(PERM_REGISTRATION_WRITE),
                   "RegistrationStatusWrite");
  ck_assert_ptr_null(service_permission_name(PERM_ALL));
  ck_assert_str_eq(service_permissions_format(PERM_ACCESS_READ, out,
                                              sizeof(out)),
                   "EnrollmentRead, RegistrationStatusRead");
  ck_assert_str_eq(service_permissions_format(0, out, sizeof(out)), "none");
  ck_assert_str_eq(service_permissions_format(PERM_ALL, out, 20),
                   "ServiceConfig");
}
END_TEST

/* The files shipped in configs/ (two levels above tests/data). */
START_TEST(test_shipped_configs)
{
  struct provd_config cfg;
  load_ok("../../configs/provd.yaml", &cfg);
  ck_assert_str_eq(cfg.id_scope, "0ne00000001");
  ck_assert_str_eq(cfg.https.host, "127.0.0.1");
  ck_assert_int_eq(cfg.https.port, 8443);
  ck_assert_int_eq(cfg.has_mqtt, 1);
  ck_assert_str_eq(cfg.mqtt.host, "127.0.0.1");
  ck_assert_int_eq(cfg.mqtt.port, 8883);
  ck_assert_str_eq(cfg.data_dir, "var");
  ck_assert_uint_eq(cfg.n_plugin_path, 1);
  ck_assert_str_eq(cfg.plugin_path[0], "build/plugins");
  ck_assert_str_eq(cfg.storage.name, "sqlite");
  ck_assert_uint_eq(cfg.n_hubs, 2);
  ck_assert_str_eq(cfg.hubs[0].name, "hub-1");
  ck_assert_str_eq(cfg.hubs[0].hostname, "hub-1.example.net");
  ck_assert_str_eq(cfg.hubs[1].name, "hub-2");
  ck_assert_str_eq(cfg.hubs[1].hostname, "hub-2.example.net");
  ck_assert_uint_eq(cfg.n_plugins, 4);
  ck_assert_int_eq(cfg.plugins[0].kind, PROVD_KIND_ATTESTATION);
  ck_assert_str_eq(cfg.plugins[0].name, "symmetric-key");
  ck_assert_int_eq(cfg.plugins[1].kind, PROVD_KIND_ATTESTATION);
  ck_assert_str_eq(cfg.plugins[1].name, "x509");
  ck_assert_int_eq(cfg.plugins[2].kind, PROVD_KIND_ATTESTATION);
  ck_assert_str_eq(cfg.plugins[2].name, "tpm");
  ck_assert_int_eq(cfg.plugins[3].kind, PROVD_KIND_ALLOCATION);
  ck_assert_str_eq(cfg.plugins[3].name, "hashed");
  config_free(&cfg);

  load_ok("../../configs/examples/minimal.yaml", &cfg);
  ck_assert_uint_eq(cfg.n_plugins, 2);
  config_free(&cfg);

  setenv("PROVD_PG_CONNINFO", "host=/tmp dbname=provd", 1);
  load_ok("../../configs/examples/postgres.yaml", &cfg);
  ck_assert_str_eq(cfg.storage.name, "postgres");
  ck_assert_ptr_nonnull(cfg_map_get(cfg.storage.options, "conninfo"));
  ck_assert_str_eq(cfg_map_get(cfg.storage.options, "conninfo")->text,
                   "host=/tmp dbname=provd");
  config_free(&cfg);
}
END_TEST

/* ---- broken files: the exact first diagnostic ---- */

static const struct {
  const char *file;
  const char *first;
} bad_cases[] = {
    {"config/bad-syntax.yaml",
     "config/bad-syntax.yaml:4:2: syntax error: did not find expected key "
     "(while parsing a block mapping at line 1, column 1)"},
    {"config/bad-unknown-top.yaml",
     "config/bad-unknown-top.yaml:2:1: unknown top-level key 'lisen' (did you "
     "mean 'listen'?)"},
    {"config/bad-unknown-hub-key.yaml",
     "config/bad-unknown-hub-key.yaml:3:5: unknown key 'hostnme' in hubs[0] "
     "(did you mean 'hostname'?)"},
    {"config/bad-port-type.yaml",
     "config/bad-port-type.yaml:2:10: listen.https: bad address "
     "'127.0.0.1:https': port must be a number 0..65535"},
    {"config/bad-workers-type.yaml",
     "config/bad-workers-type.yaml:1:10: workers: expected an integer, got a "
     "sequence"},
    {"config/bad-address.yaml",
     "config/bad-address.yaml:1:18: listen.https: bad address "
     "'hub.example.net:8443': host must be an IPv4 address, [IPv6] address "
     "or localhost"},
    {"config/bad-port-range.yaml",
     "config/bad-port-range.yaml:1:40: listen.mqtt: bad address "
     "'[::1]:70000': port must be a number 0..65535"},
    {"config/bad-hub-hostname.yaml",
     "config/bad-hub-hostname.yaml:3:5: hubs[1]: missing required key "
     "'hostname'"},
    {"config/bad-hub-weight.yaml",
     "config/bad-hub-weight.yaml:4:13: hubs[0].weight: 1001 is out of range "
     "0..1000"},
    {"config/bad-hub-dup.yaml",
     "config/bad-hub-dup.yaml:3:13: hubs[1].name: duplicate hub name 'hub-1' "
     "(first at line 2, column 13)"},
    {"config/bad-plugin-dup-id.yaml",
     "config/bad-plugin-dup-id.yaml:4:42: plugins[2].id: duplicate notifier "
     "instance id 'ops' (first at line 2, column 39)"},
    {"config/bad-plugin-dup-name.yaml",
     "config/bad-plugin-dup-name.yaml:3:32: plugins[1].name: duplicate "
     "attestation instance id 'x509' (first at line 2, column 32); set 'id' "
     "to run a plugin twice"},
    {"config/bad-kind.yaml",
     "config/bad-kind.yaml:2:13: plugins[0].kind: unknown kind 'atestation' "
     "(did you mean 'attestation'?)"},
    {"config/bad-kind-storage.yaml",
     "config/bad-kind-storage.yaml:2:13: plugins[0].kind: storage is "
     "configured with the top-level 'storage:' key"},
    {"config/bad-events.yaml",
     "config/bad-events.yaml:4:5: plugins[0].events: only notifier plugins "
     "take 'events'"},
    {"config/bad-env-unset.yaml",
     "config/bad-env-unset.yaml:2:11: environment variable "
     "'PROVD_TEST_SURELY_UNSET' is not set"},
    {"config/bad-env-syntax.yaml",
     "config/bad-env-syntax.yaml:1:11: bad variable reference: expected "
     "${NAME} with NAME of letters, digits and '_' (write $${ for a literal "
     "${)"},
    {"config/bad-log-level.yaml",
     "config/bad-log-level.yaml:1:12: log_level: unknown level 'debgu' (did "
     "you mean 'debug'?)"},
    {"config/bad-key-file.yaml",
     "config/bad-key-file.yaml:2:32: service_policies[0].key_file: cannot "
     "read 'config/no-such.key': No such file or directory"},
    {"config/bad-key-file-content.yaml",
     "config/bad-key-file-content.yaml:2:32: service_policies[0].key_file: "
     "'config/policy-bad.key' does not hold a valid base64 key"},
    {"config/bad-policy-key.yaml",
     "config/bad-policy-key.yaml:2:27: service_policies[0].key: not a valid "
     "base64 key"},
    {"config/bad-policy-both.yaml",
     "config/bad-policy-both.yaml:4:5: service_policies[0]: give either "
     "'key' or 'key_file', not both"},
    {"config/bad-policy-access.yaml",
     "config/bad-policy-access.yaml:2:30: service_policies[0].access: "
     "unknown access 'write' (expected read or read-write, or give "
     "'permissions')"},
    {"config/bad-policy-short-key.yaml",
     "config/bad-policy-short-key.yaml:2:27: service_policies[0].key: the "
     "key must decode to at least 16 bytes"},
    {"config/bad-issuer-csr-key.yaml",
     "config/bad-issuer-csr-key.yaml:2:87: certificate_issuers[0].csr_key: "
     "unknown value 'rsa' (expected p384 or any)"},
    {"config/bad-issuer-days.yaml",
     "config/bad-issuer-days.yaml:2:93: certificate_issuers[0].validity_days: "
     "0 is out of range 1..3650"},
    {"config/bad-issuer-dup.yaml",
     "config/bad-issuer-dup.yaml:3:13: certificate_issuers[1].name: "
     "duplicate issuer name 'ca' (first at line 2, column 13)"},
    {"config/bad-dup-key.yaml",
     "config/bad-dup-key.yaml:3:1: duplicate key 'workers' (first at line 1, "
     "column 1)"},
    {"config/bad-id-scope.yaml",
     "config/bad-id-scope.yaml:1:11: id_scope: '0ne-0000' is not a valid ID "
     "scope (1 to 32 letters and digits)"},
    {"config/bad-retry-after.yaml",
     "config/bad-retry-after.yaml:2:16: registration.retry_after: 0 is out "
     "of range 1..300"},
    {"config/bad-max-body.yaml",
     "config/bad-max-body.yaml:1:21: limits.max_body: expected a size like "
     "4096, 96KiB or 1MB, got '96 KiBs'"},
    {"config/bad-root.yaml",
     "config/bad-root.yaml:1:1: top level: expected a mapping, got a "
     "sequence"},
    {"config/bad-tls-half.yaml",
     "config/bad-tls-half.yaml:1:6: tls: give both 'cert' and 'key', or "
     "neither"},
    {"config/bad-storage.yaml",
     "config/bad-storage.yaml:1:10: storage: missing required key 'plugin'"},
    {"config/bad-two-docs.yaml",
     "config/bad-two-docs.yaml:2:1: only one YAML document is allowed"},
    {"config/bad-alias.yaml",
     "config/bad-alias.yaml:3:5: aliases (*h) are not supported"},
    {"config/bad-options-type.yaml",
     "config/bad-options-type.yaml:2:44: plugins[0].options: expected a "
     "mapping, got a sequence"},
    {"config/bad-utf8.yaml",
     "config/bad-utf8.yaml:2:13: syntax error: invalid leading UTF-8 octet"},
    {"config/no-such-file.yaml",
     "config/no-such-file.yaml: cannot open: No such file or directory"},
};

START_TEST(test_bad_file)
{
  char *first = first_error(bad_cases[_i].file, NULL);
  ck_assert_str_eq(first, bad_cases[_i].first);
  free(first);
}
END_TEST

START_TEST(test_all_errors_in_one_pass)
{
  static const char *const expected[] = {
      "config/bad-many.yaml:2:11: id_scope: must not be empty",
      "config/bad-many.yaml:3:10: workers: -1 is out of range 0..1024",
      "config/bad-many.yaml:5:49: unknown key 'wieght' in hubs[0] (did you "
      "mean 'weight'?)",
      "config/bad-many.yaml:6:5: hubs[1]: missing required key 'hostname'",
      "config/bad-many.yaml:6:13: hubs[1].name: duplicate hub name 'hub-1' "
      "(first at line 5, column 13)",
      "config/bad-many.yaml:8:39: plugins[0].events: only notifier plugins "
      "take 'events'",
  };
  struct provd_config cfg;
  struct diag d = {0};
  ck_assert_int_eq(config_load("config/bad-many.yaml", &cfg, &d), -1);
  ck_assert_uint_eq(d.n, sizeof(expected) / sizeof(expected[0]));
  for (size_t i = 0; i < d.n; i++)
    ck_assert_str_eq(d.lines[i], expected[i]);
  diag_free(&d);
  ck_assert_ptr_null(d.lines);
  config_free(&cfg);
}
END_TEST

/* Writes text to a new file under /tmp; returns its path (caller frees
 * after unlink). */
static char *temp_file(const char *text, size_t len)
{
  char *path = strdup("/tmp/test_config_XXXXXX");
  ck_assert_ptr_nonnull(path);
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  fclose(f);
  return path;
}

START_TEST(test_input_limits)
{
  /* 70 nested flow sequences: more than CFG_MAX_DEPTH */
  char deep[160];
  size_t n = 0;
  n += (size_t)snprintf(deep, sizeof(deep), "workers: ");
  for (int i = 0; i < 70; i++)
    deep[n++] = '[';
  for (int i = 0; i < 70; i++)
    deep[n++] = ']';
  deep[n++] = '\n';
  char *path = temp_file(deep, n);
  char *first = first_error(path, NULL);
  char want[256];
  snprintf(want, sizeof(want), "%s:1:74: nested too deeply (limit %d)", path,
           CFG_MAX_DEPTH);
  ck_assert_str_eq(first, want);
  free(first);
  unlink(path);
  free(path);

  /* a comment larger than the file limit */
  size_t big_len = CFG_MAX_FILE + 2;
  char *big = malloc(big_len);
  ck_assert_ptr_nonnull(big);
  memset(big, ' ', big_len);
  big[0] = '#';
  path = temp_file(big, big_len);
  free(big);
  first = first_error(path, NULL);
  snprintf(want, sizeof(want), "%s: file is larger than %d bytes", path,
           CFG_MAX_FILE);
  ck_assert_str_eq(first, want);
  free(first);
  unlink(path);
  free(path);
}
END_TEST

/* ---- diagnostics ---- */

START_TEST(test_diag_format_and_cap)
{
  struct diag d = {0};
  struct cfg_pos full = {"a.yaml", 3, 7}, file_only = {"a.yaml", 0, 0};
  diag_add(&d, &full, "bad %s %d", "thing", 42);
  diag_add(&d, &file_only, "cannot open");
  diag_add(&d, NULL, "no position");
  ck_assert_uint_eq(d.n, 3);
  ck_assert_str_eq(d.lines[0], "a.yaml:3:7: bad thing 42");
  ck_assert_str_eq(d.lines[1], "a.yaml: cannot open");
  ck_assert_str_eq(d.lines[2], "no position");
  for (int i = 0; i < 1000; i++)
    diag_add(&d, &full, "again %d", i);
  ck_assert_uint_eq(d.n, 201); /* 200 + one "too many errors" line */
  ck_assert_str_eq(d.lines[200], "too many errors; stopping here");
  diag_free(&d);
  ck_assert_uint_eq(d.n, 0);
}
END_TEST

/* ---- addresses ---- */

START_TEST(test_parse_listen)
{
  struct cfg_listen l;
  char msg[128];
  ck_assert_int_eq(config_parse_listen("127.0.0.1:8443", &l, msg, sizeof(msg)), 0);
  ck_assert_str_eq(l.host, "127.0.0.1");
  ck_assert_int_eq(l.port, 8443);
  ck_assert_int_eq(config_parse_listen("[::1]:0", &l, msg, sizeof(msg)), 0);
  ck_assert_str_eq(l.host, "::1");
  ck_assert_int_eq(l.port, 0);
  ck_assert_int_eq(config_parse_listen("localhost:65535", &l, msg, sizeof(msg)), 0);
  ck_assert_str_eq(l.host, "localhost");
  ck_assert_int_eq(l.port, 65535);
  ck_assert_int_eq(config_parse_listen("0.0.0.0:1", &l, msg, sizeof(msg)), 0);

  static const char *const bad[] = {
      "127.0.0.1",       "127.0.0.1:",     "127.0.0.1:65536", ":8443",
      "::1:8443",        "[::1]8443",      "[127.0.0.1]:80",  "1.2.3:80",
      "example.com:80",  "127.0.0.1:-1",   "127.0.0.1:8a",    "[::1:80",
      "127.0.0.1:000080"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    msg[0] = '\0';
    ck_assert_msg(config_parse_listen(bad[i], &l, msg, sizeof(msg)) == -1,
                  "accepted %s", bad[i]);
    ck_assert_msg(msg[0] != '\0', "no message for %s", bad[i]);
  }
}
END_TEST

/* ---- value parsers ---- */

START_TEST(test_duration_and_size)
{
  long long ms;
  unsigned long long bytes;
  static const struct {
    const char *text;
    long long ms;
  } durations[] = {{"250ms", 250}, {"30s", 30000}, {"5m", 300000},
                   {"1h", 3600000}, {"7", 7000}, {"0", 0}, {"2 s", 2000}};
  for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
    ck_assert_msg(cfg_parse_duration_ms(durations[i].text, &ms) == 0, "%s",
                  durations[i].text);
    ck_assert_int_eq(ms, durations[i].ms);
  }
  static const char *const bad_durations[] = {"", "s", "-1s", "1.5s", "5d",
                                              "1hh", "99999999999999999999"};
  for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++)
    ck_assert_msg(cfg_parse_duration_ms(bad_durations[i], &ms) == -1, "%s",
                  bad_durations[i]);

  static const struct {
    const char *text;
    unsigned long long bytes;
  } sizes[] = {{"512", 512},          {"16KiB", 16384},   {"1MiB", 1048576},
               {"1MB", 1000000},      {"1KB", 1000},      {"1GiB", 1ULL << 30},
               {"96 KiB", 96 * 1024}, {"10B", 10},        {"2kib", 2048}};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    ck_assert_msg(cfg_parse_size(sizes[i].text, &bytes) == 0, "%s",
                  sizes[i].text);
    ck_assert_uint_eq(bytes, sizes[i].bytes);
  }
  static const char *const bad_sizes[] = {"", "KiB", "1.5MiB", "-1",
                                          "1 TiBs", "9999999999GiB"};
  for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
    ck_assert_msg(cfg_parse_size(bad_sizes[i], &bytes) == -1, "%s",
                  bad_sizes[i]);
}
END_TEST

START_TEST(test_scalars_and_hints)
{
  int b;
  long long ll;
  double dbl;
  ck_assert_int_eq(cfg_parse_bool("yes", &b), 0);
  ck_assert_int_eq(b, 1);
  ck_assert_int_eq(cfg_parse_bool("Off", &b), 0);
  ck_assert_int_eq(b, 0);
  ck_assert_int_eq(cfg_parse_bool("1", &b), -1);
  ck_assert_int_eq(cfg_parse_int("-42", &ll), 0);
  ck_assert_int_eq(ll, -42);
  ck_assert_int_eq(cfg_parse_int("42x", &ll), -1);
  ck_assert_int_eq(cfg_parse_int(" 42", &ll), -1);
  ck_assert_int_eq(cfg_parse_int("99999999999999999999", &ll), -1);
  ck_assert_int_eq(cfg_parse_double("2.5e3", &dbl), 0);
  ck_assert_double_eq(dbl, 2500.0);
  ck_assert_int_eq(cfg_parse_double("nan", &dbl), -1);
  ck_assert_int_eq(cfg_base64_ok("c2VjcmV0"), 1);
  ck_assert_int_eq(cfg_base64_ok("c2VjcmV0MQ=="), 1);
  ck_assert_int_eq(cfg_base64_ok("c2VjcmV0M"), 0);
  ck_assert_int_eq(cfg_base64_ok("c2V=cmV0"), 0);
  ck_assert_int_eq(cfg_base64_ok(""), 0);

  static const char *const words[] = {"hostname", "name", "weight", NULL};
  ck_assert_str_eq(cfg_hint("hostnme", words), "hostname");
  ck_assert_str_eq(cfg_hint("wieght", words), "weight"); /* swap */
  ck_assert_str_eq(cfg_hint("NAME", words), "name");
  ck_assert_str_eq(cfg_hint("host", words), "hostname"); /* prefix */
  ck_assert_ptr_null(cfg_hint("zz", words));
  ck_assert_ptr_null(cfg_hint("colour", words));
}
END_TEST

/* ---- plugin options ---- */

static const char *const modes[] = {"fast", "safe", NULL};
static const struct provd_option schema[] = {
    {"url", PROVD_OPT_URL, NULL, PROVD_OPT_REQUIRED, "Server URL.", NULL},
    {"timeout", PROVD_OPT_DURATION, "30s", 0, "Timeout.", NULL},
    {"max_size", PROVD_OPT_SIZE, "16KiB", 0, "Largest message.", NULL},
    {"retries", PROVD_OPT_INT, "3", 0, "Attempts.", NULL},
    {"ratio", PROVD_OPT_DOUBLE, "0.5", 0, "A ratio.", NULL},
    {"verbose", PROVD_OPT_BOOL, "off", 0, "Chatty.", NULL},
    {"mode", PROVD_OPT_ENUM, "safe", 0, "Mode.", modes},
    {"ca", PROVD_OPT_PATH, NULL, 0, "CA file.", NULL},
    {"to", PROVD_OPT_STRING_LIST, "[ a@example.net ]", 0, "Recipients.", NULL},
    {"password", PROVD_OPT_STRING, NULL, PROVD_OPT_SENSITIVE, "Secret.", NULL},
    {"extra", PROVD_OPT_NODE, NULL, 0, "Anything.", NULL},
    {"pin", PROVD_OPT_INT, NULL, PROVD_OPT_SENSITIVE, "A PIN.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL}};

/* Loads path (which must be valid) and checks plugins[0]'s options. */
static int check_opts(const char *path, json_t **out, char **first)
{
  struct provd_config cfg;
  struct diag d = {0};
  load_ok(path, &cfg);
  const struct cfg_plugin_decl *p = &cfg.plugins[0];
  int rc = config_check_options(schema, p->options, &p->pos, "test", out, &d);
  *first = d.n ? strdup(d.lines[0]) : NULL;
  ck_assert_int_eq(rc == 0, d.n == 0);
  diag_free(&d);
  config_free(&cfg); /* *out does not point into the tree */
  return rc;
}

START_TEST(test_options_typed)
{
  json_t *o = NULL;
  char *first = NULL;
  ck_assert_int_eq(check_opts("config/opts-good.yaml", &o, &first), 0);
  ck_assert_str_eq(json_string_value(json_object_get(o, "url")),
                   "smtp://127.0.0.1:8025");
  ck_assert_int_eq(json_integer_value(json_object_get(o, "timeout")), 250);
  ck_assert_int_eq(json_integer_value(json_object_get(o, "max_size")), 1048576);
  ck_assert_int_eq(json_integer_value(json_object_get(o, "retries")), 5);
  ck_assert_double_eq(json_real_value(json_object_get(o, "ratio")), 1.25);
  ck_assert(json_is_true(json_object_get(o, "verbose")));
  ck_assert_str_eq(json_string_value(json_object_get(o, "mode")), "fast");
  ck_assert_str_eq(json_string_value(json_object_get(o, "ca")),
                   "config/dummy-cert.pem");
  json_t *to = json_object_get(o, "to");
  ck_assert_uint_eq(json_array_size(to), 2);
  ck_assert_str_eq(json_string_value(json_array_get(to, 1)), "dev@example.net");
  /* password_file: read, newline stripped, stored under the option name */
  ck_assert_str_eq(json_string_value(json_object_get(o, "password")),
                   "s3cr3t-from-file");
  ck_assert_ptr_null(json_object_get(o, "password_file"));
  json_t *extra = json_object_get(o, "extra");
  ck_assert_int_eq(json_integer_value(json_object_get(extra, "a")), 1);
  ck_assert(json_is_true(json_array_get(json_object_get(extra, "b"), 0)));
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(extra, "b"), 1)), "s");
  ck_assert(json_is_null(json_array_get(json_object_get(extra, "b"), 2)));
  ck_assert_double_eq(json_real_value(json_object_get(extra, "c")), 2.5);
  ck_assert_str_eq(json_string_value(json_object_get(extra, "d")), "text");
  ck_assert_uint_eq(json_object_size(o), 11);

  char *red = config_redact_options(schema, o);
  ck_assert_ptr_nonnull(red);
  ck_assert_ptr_nonnull(strstr(red, "\"password\":\"***\""));
  ck_assert_ptr_null(strstr(red, "s3cr3t"));
  ck_assert_ptr_nonnull(strstr(red, "\"url\":\"smtp://127.0.0.1:8025\""));
  /* redaction works on a copy */
  ck_assert_str_eq(json_string_value(json_object_get(o, "password")),
                   "s3cr3t-from-file");
  free(red);
  json_decref(o);
}
END_TEST

START_TEST(test_options_defaults)
{
  json_t *o = NULL;
  char *first = NULL;
  ck_assert_int_eq(check_opts("config/opts-defaults.yaml", &o, &first), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(o, "timeout")), 30000);
  ck_assert_int_eq(json_integer_value(json_object_get(o, "max_size")), 16384);
  ck_assert_int_eq(json_integer_value(json_object_get(o, "retries")), 3);
  ck_assert_double_eq(json_real_value(json_object_get(o, "ratio")), 0.5);
  ck_assert(json_is_false(json_object_get(o, "verbose")));
  ck_assert_str_eq(json_string_value(json_object_get(o, "mode")), "safe");
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "to"), 0)),
                   "a@example.net");
  /* no default, not given: absent */
  ck_assert_ptr_null(json_object_get(o, "password"));
  ck_assert_ptr_null(json_object_get(o, "ca"));
  ck_assert_ptr_null(json_object_get(o, "extra"));
  char *red = config_redact_options(schema, o);
  ck_assert_ptr_null(strstr(red, "***"));
  free(red);
  json_decref(o);
}
END_TEST

START_TEST(test_options_null_tree)
{
  static const struct provd_option opt_only[] = {
      {"level", PROVD_OPT_INT, "2", 0, "L.", NULL},
      {NULL, 0, NULL, 0, NULL, NULL}};
  struct cfg_pos where = {"x.yaml", 9, 3};
  struct diag d = {0};
  json_t *o = NULL;
  ck_assert_int_eq(config_check_options(opt_only, NULL, &where, "p", &o, &d), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(o, "level")), 2);
  json_decref(o);
  ck_assert_int_eq(config_check_options(schema, NULL, &where, "p", &o, &d), -1);
  ck_assert_ptr_null(o);
  ck_assert_uint_eq(d.n, 1);
  ck_assert_str_eq(d.lines[0], "x.yaml:9:3: plugin 'p': missing required option 'url'");
  diag_free(&d);

  static const struct provd_option bad_default[] = {
      {"wait", PROVD_OPT_DURATION, "forever", 0, "W.", NULL},
      {NULL, 0, NULL, 0, NULL, NULL}};
  ck_assert_int_eq(config_check_options(bad_default, NULL, &where, "p", &o, &d), -1);
  ck_assert_str_eq(d.lines[0], "x.yaml:9:3: plugin 'p': option 'wait': bad "
                   "default 'forever' in the plugin's schema: expected a "
                   "duration like 250ms, 30s, 5m or 1h, got 'forever'");
  diag_free(&d);
  char *red = config_redact_options(schema, NULL);
  ck_assert_str_eq(red, "{}");
  free(red);
}
END_TEST

static const struct {
  const char *file;
  const char *first;
} bad_opts[] = {
    {"config/opts-unknown.yaml",
     "config/opts-unknown.yaml:6:7: plugin 'test': unknown option 'tmeout' "
     "(did you mean 'timeout'?)"},
    {"config/opts-type.yaml",
     "config/opts-type.yaml:4:55: plugin 'test': option 'retries': expected "
     "an integer, got 'many'"},
    {"config/opts-missing.yaml",
     "config/opts-missing.yaml:5:7: plugin 'test': missing required option "
     "'url'"},
    {"config/opts-none.yaml",
     "config/opts-none.yaml:2:5: plugin 'test': missing required option "
     "'url'"},
    {"config/opts-enum.yaml",
     "config/opts-enum.yaml:4:52: plugin 'test': option 'mode': unknown "
     "value 'quick' (expected fast or safe)"},
    {"config/opts-enum-hint.yaml",
     "config/opts-enum-hint.yaml:4:52: plugin 'test': option 'mode': unknown "
     "value 'saef' (did you mean 'safe'?)"},
    {"config/opts-duration.yaml",
     "config/opts-duration.yaml:4:55: plugin 'test': option 'timeout': "
     "expected a duration like 250ms, 30s, 5m or 1h, got 'soon'"},
    {"config/opts-size.yaml",
     "config/opts-size.yaml:4:56: plugin 'test': option 'max_size': expected "
     "a size like 4096, 16KiB or 1MB, got '2XB'"},
    {"config/opts-both.yaml",
     "config/opts-both.yaml:7:7: plugin 'test': give either 'password' or "
     "'password_file', not both"},
    {"config/opts-file-missing.yaml",
     "config/opts-file-missing.yaml:6:22: plugin 'test': option "
     "'password_file': cannot read 'config/no-such-secret.txt': No such file "
     "or directory"},
    {"config/opts-file-not-sensitive.yaml",
     "config/opts-file-not-sensitive.yaml:5:7: plugin 'test': unknown option "
     "'url_file' (did you mean 'url'?)"},
    {"config/opts-url.yaml",
     "config/opts-url.yaml:4:21: plugin 'test': option 'url': expected a URL "
     "(scheme://...), got '127.0.0.1:25'"},
    {"config/opts-list.yaml",
     "config/opts-list.yaml:6:11: plugin 'test': option 'to': expected a "
     "sequence of strings, got a scalar"},
    {"config/opts-sensitive-bad.yaml",
     "config/opts-sensitive-bad.yaml:6:12: plugin 'test': option 'pin': not "
     "a valid value (not shown: sensitive)"},
    {"config/opts-sensitive-file-bad.yaml",
     "config/opts-sensitive-file-bad.yaml:6:17: plugin 'test': option "
     "'pin_file': the content of 'config/secret.txt' is not a valid value"},
    {"config/opts-bool-seq.yaml",
     "config/opts-bool-seq.yaml:4:65: plugin 'test': option 'verbose': "
     "expected a scalar, got a sequence"},
};

START_TEST(test_options_bad)
{
  json_t *o = (json_t *)1;
  char *first = NULL;
  ck_assert_int_eq(check_opts(bad_opts[_i].file, &o, &first), -1);
  ck_assert_ptr_null(o);
  ck_assert_str_eq(first, bad_opts[_i].first);
  free(first);
}
END_TEST

START_TEST(test_options_wrong_value_not_also_missing)
{
  /* A required option given with a bad value is reported once. */
  struct provd_config cfg;
  struct diag d = {0};
  json_t *o = NULL;
  load_ok("config/opts-url.yaml", &cfg);
  ck_assert_int_eq(config_check_options(schema, cfg.plugins[0].options,
                                        &cfg.plugins[0].pos, "test", &o, &d),
                   -1);
  ck_assert_uint_eq(d.n, 1);
  diag_free(&d);
  config_free(&cfg);
}
END_TEST

static Suite *config_suite(void)
{
  Suite *s = suite_create("config");
  TCase *load = tcase_create("load");
  tcase_add_test(load, test_good_file_every_field);
  tcase_add_test(load, test_defaults_when_absent);
  tcase_add_test(load, test_config_defaults);
  tcase_add_test(load, test_default_plugin_dir);
  tcase_add_test(load, test_changed_sections);
  tcase_add_test(load, test_env_expansion);
  tcase_add_test(load, test_shipped_configs);
  tcase_add_test(load, test_policy_permissions);
  tcase_add_test(load, test_permission_names);
  tcase_add_loop_test(load, test_bad_file, 0,
                      (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
  tcase_add_test(load, test_all_errors_in_one_pass);
  tcase_add_test(load, test_input_limits);
  suite_add_tcase(s, load);

  TCase *parts = tcase_create("parts");
  tcase_add_test(parts, test_diag_format_and_cap);
  tcase_add_test(parts, test_parse_listen);
  tcase_add_test(parts, test_duration_and_size);
  tcase_add_test(parts, test_scalars_and_hints);
  suite_add_tcase(s, parts);

  TCase *opts = tcase_create("options");
  tcase_add_test(opts, test_options_typed);
  tcase_add_test(opts, test_options_defaults);
  tcase_add_test(opts, test_options_null_tree);
  tcase_add_loop_test(opts, test_options_bad, 0,
                      (int)(sizeof(bad_opts) / sizeof(bad_opts[0])));
  tcase_add_test(opts, test_options_wrong_value_not_also_missing);
  suite_add_tcase(s, opts);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(config_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
