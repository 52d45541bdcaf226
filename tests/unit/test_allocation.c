/* engine/allocation.c with the real allocation plugins, no store:
 * geoLatency ties spread by weight over 100,000 ids (within 5 %), drained
 * hubs never chosen, and the AllocationRequest of a group with a TPM
 * enrollment. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config/config.h"
#include "engine/allocation.h"
#include "plugin/loader.h"
#include "util/err.h"

#define N_IDS 100000

static char dir[64];
static struct provd_config cfg;
static struct plugin_set plugins;
static struct allocator *alloc;

static void up(const char *hubs_yaml)
{
  snprintf(dir, sizeof(dir), "/tmp/provd-test-alloc-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof(path), "%s/provd.yaml", dir);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "data_dir: %s\n"
          "plugin_path: [ '%s' ]\n"
          "hubs:\n%s"
          "plugins:\n"
          "  - { kind: allocation, name: hashed }\n"
          "  - kind: allocation\n"
          "    name: geo-latency\n"
          "    options:\n"
          "      hub_regions:\n"
          "        - { hub: eu-1, region: westeurope }\n"
          "        - { hub: us-1, region: eastus }\n"
          "        - { hub: us-3, region: eastus }\n",
          dir, getenv("PROVD_PLUGIN_DIR"), hubs_yaml);
  ck_assert_int_eq(fclose(f), 0);
  struct diag d = {0};
  int rc = config_load(path, &cfg, &d);
  if (rc == 0)
    rc = plugins_load(&cfg, &plugins, &d);
  ck_assert_msg(rc == 0, "%s", d.n ? d.lines[0] : "config");
  diag_free(&d);
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(plugins_start(&plugins, &err), PROVD_OK);
  ck_assert_int_eq(allocator_new(&cfg, &plugins, &alloc, &err), PROVD_OK);
}

static void down(void)
{
  allocator_free(alloc);
  plugins_stop(&plugins);
  plugins_free(&plugins);
  config_free(&cfg);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Counts which hub each of N_IDS devices from `region` gets. */
static void spread(const json_t *enr, const char *region, const char *hubs[],
                   size_t *counts, size_t n_hubs)
{
  json_t *payload = json_pack("{s:s}", "region", region);
  struct provd_call call = {0};
  for (int i = 0; i < N_IDS; i++) {
    char id[32];
    snprintf(id, sizeof(id), "device-%d", i);
    struct alloc_input in = {.registration_id = id, .enrollment = enr,
                             .mechanism = "symmetricKey",
                             .payload = payload};
    struct alloc_outcome out;
    allocator_run(alloc, &call, &in, &out);
    ck_assert_msg(out.hub != NULL, "%s: %s", id, out.detail);
    size_t k = 0;
    while (k < n_hubs && strcmp(hubs[k], out.hub) != 0)
      k++;
    ck_assert_msg(k < n_hubs, "%s went to %s", id, out.hub);
    counts[k]++;
    alloc_outcome_clear(&out);
  }
  json_decref(payload);
}

static void expect_share(size_t count, double share)
{
  double got = (double)count / N_IDS;
  ck_assert_msg(got > share * 0.95 && got < share * 1.05,
                "share %.4f, expected %.4f +- 5 %%", got, share);
}

/* eastus: us-1 (weight 1) and us-3 (weight 3) tie at 0 ms; eu-1 is far
 * and us-2 drained. */
START_TEST(t_geo_ties_follow_weights)
{
  up("  - { name: eu-1, hostname: eu-1.example.net }\n"
     "  - { name: us-1, hostname: us-1.example.net, weight: 1 }\n"
     "  - { name: us-2, hostname: us-2.example.net, weight: 0 }\n"
     "  - { name: us-3, hostname: us-3.example.net, weight: 3 }\n");
  json_t *enr = json_pack("{s:s}", "allocationPolicy", "geoLatency");
  const char *hubs[] = {"us-1", "us-3"};
  size_t counts[2] = {0};
  spread(enr, "eastus", hubs, counts, 2);
  expect_share(counts[0], 0.25);
  expect_share(counts[1], 0.75);
  json_decref(enr);
  down();
}
END_TEST

/* hashed over every hub but the drained and the closed one. */
START_TEST(t_hashed_skips_drained_and_closed)
{
  up("  - { name: eu-1, hostname: eu-1.example.net, weight: 2 }\n"
     "  - { name: us-1, hostname: us-1.example.net, weight: 3 }\n"
     "  - { name: us-2, hostname: us-2.example.net, weight: 0 }\n"
     "  - { name: us-3, hostname: us-3.example.net,"
     " apply_allocation_policy: false }\n");
  json_t *enr = json_object();
  const char *hubs[] = {"eu-1", "us-1"};
  size_t counts[2] = {0};
  spread(enr, "nowhere", hubs, counts, 2);
  expect_share(counts[0], 0.4);
  expect_share(counts[1], 0.6);
  json_decref(enr);
  down();
}
END_TEST

/* §8.1 for a group: enrollmentGroup without keys, tpm public keys. */
START_TEST(t_request_json_group_tpm)
{
  up("  - { name: eu-1, hostname: eu-1.example.net }\n");
  json_t *enr = json_pack(
      "{s:s,s:{s:s,s:{s:s,s:s}}}", "enrollmentGroupId", "g",
      "attestation", "type", "tpm", "tpm", "endorsementKey", "EK",
      "storageRootKey", "SRK");
  struct alloc_input in = {.registration_id = "dev", .enrollment = enr,
                           .is_group = 1, .mechanism = "tpm",
                           .current_hub = "eu-1",
                           .current_device_id = "dev-id"};
  const struct provd_hub_info *cands[1];
  struct provd_hub_info h = {.struct_size = sizeof(h), .name = "eu-1",
                             .hostname = "eu-1.example.net", .weight = 1};
  cands[0] = &h;
  char *text = allocation_request_json(alloc, &in, cands, 1);
  json_t *doc = json_loads(text, 0, NULL);
  free(text);
  ck_assert_ptr_null(json_object_get(doc, "individualEnrollment"));
  json_t *grp = json_object_get(doc, "enrollmentGroup");
  ck_assert_uint_eq(json_object_size(json_object_get(grp, "attestation")), 1);
  json_t *ctx = json_object_get(doc, "deviceRuntimeContext");
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(ctx, "tpm"), "endorsementKey")),
                   "EK");
  ck_assert_str_eq(json_string_value(json_object_get(ctx,
                                                     "currentIotHubHostName")),
                   "eu-1.example.net");
  ck_assert_str_eq(json_string_value(json_object_get(ctx, "currentDeviceId")),
                   "dev-id");
  ck_assert_ptr_null(json_object_get(ctx, "payload"));
  json_decref(doc);
  json_decref(enr);
  down();
}
END_TEST

int main(void)
{
  Suite *s = suite_create("allocation");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, t_geo_ties_follow_weights);
  tcase_add_test(tc, t_hashed_skips_drained_and_closed);
  tcase_add_test(tc, t_request_json_group_tpm);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
