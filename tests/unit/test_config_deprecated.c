/* Deprecated config (docs/upgrading.md): a renamed core key is read
 * under its new name for one minor release with a warning at its
 * FILE:LINE:COL; both names at once are an error; a plugin option flagged
 * PROVD_OPT_DEPRECATED still applies, with a warning. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/deprecated.h"
#include "config/tree.h"

static const struct cfg_rename renames[] = {
    {"limits.max_size", "max_body", "0.2", "0.3"},
    {"hubs[].apply_policy", "apply_allocation_policy", "0.2", "0.3"},
    {"workers_count", "workers", "0.2", "0.3"},
    {NULL, NULL, NULL, NULL}};

static struct cfg_node *parse(const char *yaml)
{
  struct cfg_node *root = NULL;
  struct diag d = {0};
  ck_assert_int_eq(cfg_tree_parse(yaml, strlen(yaml), "t.yaml", &root, &d),
                   0);
  diag_free(&d);
  return root;
}

START_TEST(test_old_names_are_read_as_new_with_a_warning)
{
  struct cfg_node *root = parse("workers_count: 3\n"
                                "limits: { max_size: 1MiB }\n"
                                "hubs:\n"
                                "  - { name: a, apply_policy: false }\n"
                                "  - { name: b }\n");
  struct diag d = {0};
  ck_assert_int_eq(cfg_apply_renames(root, renames, &d), 0);
  ck_assert_uint_eq(d.n, 3);
  ck_assert_str_eq(d.lines[0],
                   "t.yaml:2:11: warning: 'limits.max_size' is deprecated "
                   "since provd 0.2 and is no longer read from provd 0.3 "
                   "on; call it 'max_body'");
  ck_assert_ptr_nonnull(strstr(d.lines[1], "t.yaml:4:16: warning: "
                                           "'hubs[].apply_policy'"));
  ck_assert_ptr_nonnull(strstr(d.lines[2], "t.yaml:1:1: warning: "));
  ck_assert_str_eq(cfg_map_get(cfg_map_get(root, "limits"), "max_body")->text,
                   "1MiB");
  const struct cfg_node *hubs = cfg_map_get(root, "hubs");
  ck_assert_ptr_nonnull(cfg_map_get(hubs->items[0], "apply_allocation_policy"));
  ck_assert_str_eq(cfg_map_get(root, "workers")->text, "3");
  diag_free(&d);
  cfg_tree_free(root);
}
END_TEST

START_TEST(test_both_names_is_an_error)
{
  struct cfg_node *root = parse("workers: 2\nworkers_count: 3\n");
  struct diag d = {0};
  ck_assert_int_eq(cfg_apply_renames(root, renames, &d), 1);
  ck_assert_uint_eq(d.n, 1);
  ck_assert_ptr_nonnull(strstr(d.lines[0], "t.yaml:2:1: 'workers_count' is "
                                           "the deprecated name of 'workers'"));
  diag_free(&d);
  cfg_tree_free(root);
}
END_TEST

START_TEST(test_core_renames_name_no_current_key)
{
  /* A rename whose old name is still a key would shadow it. */
  for (const struct cfg_rename *r = cfg_core_renames; r->old_path; r++) {
    ck_assert_ptr_nonnull(r->new_key);
    ck_assert_ptr_nonnull(r->since);
    ck_assert_ptr_nonnull(r->removed_in);
  }
  struct cfg_node *root = parse("workers: 2\nlimits: { max_body: 1MiB }\n");
  struct diag d = {0};
  ck_assert_int_eq(cfg_apply_renames(root, cfg_core_renames, &d), 0);
  ck_assert_uint_eq(d.n, 0);
  diag_free(&d);
  cfg_tree_free(root);
}
END_TEST

START_TEST(test_deprecated_plugin_option_warns_and_applies)
{
  static const struct provd_option schema[] = {
      {.name = "timeout", .type = PROVD_OPT_DURATION,
       .flags = PROVD_OPT_DEPRECATED,
       .description = "use deadline instead; removed in 2.0"},
      {.name = "deadline", .type = PROVD_OPT_DURATION, .description = "d"},
      {0}};
  struct cfg_node *root = parse("options: { timeout: 2s }\n");
  struct diag d = {0};
  json_t *out = NULL;
  ck_assert_int_eq(config_check_options(schema, cfg_map_get(root, "options"),
                                        NULL, "x", &out, &d), 0);
  ck_assert_uint_eq(d.n, 1);
  ck_assert_str_eq(d.lines[0], "t.yaml:1:12: warning: plugin 'x': option "
                               "'timeout' is deprecated (use deadline "
                               "instead; removed in 2.0)");
  ck_assert_int_eq(json_integer_value(json_object_get(out, "timeout")), 2000);
  json_decref(out);
  diag_free(&d);
  cfg_tree_free(root);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("config_deprecated");
  TCase *tc = tcase_create("renames");
  tcase_add_test(tc, test_old_names_are_read_as_new_with_a_warning);
  tcase_add_test(tc, test_both_names_is_an_error);
  tcase_add_test(tc, test_core_renames_name_no_current_key);
  tcase_add_test(tc, test_deprecated_plugin_option_warns_and_applies);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
