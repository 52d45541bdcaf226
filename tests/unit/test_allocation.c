/* engine/allocation.c with the real allocation plugins, no store:
 * geoLatency ties spread by weight over 100,000 ids (within 5 %), drained
 * hubs never chosen, unhealthy hubs skipped until back, and the
 * AllocationRequest of a group with a TPM
 * enrollment. */
#include <check.h>
#include <pthread.h>
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

/* One allocation of `id` with the default (hashed) policy over every hub;
 * the chosen hub's name, or the refusal reason (static strings or the
 * allocator's, valid until allocator_free). */
static const char *allocate(const char *id, const json_t *enr, char *why,
                            size_t why_cap)
{
  struct provd_call call = {0};
  struct alloc_input in = {.registration_id = id, .enrollment = enr,
                           .mechanism = "symmetricKey"};
  struct alloc_outcome out;
  allocator_run(alloc, &call, &in, &out);
  const char *hub = out.hub;
  snprintf(why, why_cap, "%s: %s", out.reason, out.detail);
  alloc_outcome_clear(&out);
  return hub;
}

static const struct alloc_hub SET_A[] = {
    {"eu-1", "eu-1.example.net", 1, 1, 0, NULL},
    {"us-1", "us-1.example.net", 1, 1, 0, NULL}};
static const struct alloc_hub SET_B[] = {
    {"eu-1", "eu-1.example.net", 0, 1, 0, NULL},  /* drained */
    {"us-1", "us-1.example.net", 1, 1, 1, NULL},  /* removed */
    {"us-9", "us-9.example.net", 1, 1, 0, NULL}}; /* added */

/* Drain, remove and add take effect for the next allocation; a removed
 * hub keeps its host name for its devices' records and an enrollment
 * naming only it is refused, saying why. */
START_TEST(t_set_hubs_applies_at_once)
{
  up("  - { name: eu-1, hostname: eu-1.example.net }\n");
  struct provd_err err = {{0}, {0}};
  char why[400];
  json_t *any = json_object();
  ck_assert_int_eq(allocator_set_hubs(alloc, SET_B, 3, &err), PROVD_OK);
  for (int i = 0; i < 200; i++) {
    char id[32];
    snprintf(id, sizeof(id), "device-%d", i);
    const char *hub = allocate(id, any, why, sizeof(why));
    ck_assert_msg(hub && strcmp(hub, "us-9") == 0, "%s: %s", id,
                  hub ? hub : why);
  }
  ck_assert_str_eq(allocator_hostname(alloc, "us-1"), "us-1.example.net");
  json_t *only_us1 = json_pack("{s:[s]}", "iotHubs", "us-1.example.net");
  ck_assert_ptr_null(allocate("d", only_us1, why, sizeof(why)));
  ck_assert_msg(strstr(why, "NO_HUB_AVAILABLE") && strstr(why, "removed"),
                "%s", why);
  struct alloc_hub many[ALLOC_MAX_HUBS + 1];
  for (size_t i = 0; i <= ALLOC_MAX_HUBS; i++)
    many[i] = SET_A[0];
  ck_assert_int_eq(allocator_set_hubs(alloc, many, ALLOC_MAX_HUBS + 1, &err),
                   PROVD_E_INVAL);
  ck_assert_str_eq(allocate("d", any, why, sizeof(why)), "us-9");
  json_decref(only_us1);
  json_decref(any);
  down();
}
END_TEST

static void *allocate_many(void *ud)
{
  (void)ud;
  json_t *any = json_object();
  char why[400];
  for (int i = 0; i < 20000; i++) {
    char id[32];
    snprintf(id, sizeof(id), "device-%d", i);
    const char *hub = allocate(id, any, why, sizeof(why));
    /* Every answer comes from one whole snapshot: never eu-1 drained
     * and us-1 removed at once, so always some hub. */
    ck_assert_msg(hub != NULL, "%s", why);
    /* reads the name: a freed snapshot would show under ASan */
    ck_assert_msg(strcmp(hub, "eu-1") == 0 || strcmp(hub, "us-1") == 0 ||
                      strcmp(hub, "us-9") == 0,
                  "%s", hub);
  }
  json_decref(any);
  return NULL;
}

/* Registrations run on several threads while the hubs change (ASan and
 * the hub names' lifetime are what this checks). */
START_TEST(t_set_hubs_while_allocating)
{
  up("  - { name: eu-1, hostname: eu-1.example.net }\n");
  struct provd_err err = {{0}, {0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, allocate_many, NULL), 0);
  for (int i = 0; i < 2000; i++)
    ck_assert_int_eq(allocator_set_hubs(alloc, i % 2 ? SET_A : SET_B,
                                        i % 2 ? 2 : 3, &err),
                     PROVD_OK);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  down();
}
END_TEST

/* A hub its connector reports down gets no new devices, and the trace
 * says why; an enrollment naming only that hub is refused; back up, it
 * takes devices again. */
START_TEST(t_unhealthy_hub_is_skipped_until_back)
{
  up("  - { name: eu-1, hostname: eu-1.example.net }\n"
     "  - { name: us-1, hostname: us-1.example.net }\n");
  char why[400];
  json_t *any = json_object();
  json_t *only_eu1 = json_pack("{s:[s]}", "iotHubs", "eu-1");
  allocator_set_hub_health(alloc, "eu-1", 0);
  allocator_set_hub_health(alloc, "eu-1", 0); /* twice: still one entry */
  for (int i = 0; i < 200; i++) {
    char id[32];
    snprintf(id, sizeof(id), "device-%d", i);
    const char *hub = allocate(id, any, why, sizeof(why));
    ck_assert_msg(hub && strcmp(hub, "us-1") == 0, "%s: %s", id,
                  hub ? hub : why);
  }
  ck_assert_ptr_null(allocate("d", only_eu1, why, sizeof(why)));
  ck_assert_msg(strstr(why, "NO_HUB_AVAILABLE") && strstr(why, "unhealthy"),
                "%s", why);
  allocator_set_hub_health(alloc, "eu-1", 1);
  ck_assert_str_eq(allocate("d", only_eu1, why, sizeof(why)), "eu-1");
  int eu = 0;
  for (int i = 0; i < 200; i++) {
    char id[32];
    snprintf(id, sizeof(id), "device-%d", i);
    const char *hub = allocate(id, any, why, sizeof(why));
    eu += hub && strcmp(hub, "eu-1") == 0;
  }
  ck_assert_msg(eu > 50, "eu-1 got %d of 200 once healthy again", eu);
  json_decref(only_eu1);
  json_decref(any);
  down();
}
END_TEST

/* The explain trace is built only when asked for: a registration carries
 * none, `provctl explain` gets the candidates, what was left out and why,
 * each policy step and the refusal. */
START_TEST(t_trace_only_when_asked)
{
  up("  - { name: eu-1, hostname: eu-1.example.net }\n"
     "  - { name: us-1, hostname: us-1.example.net }\n");
  json_t *enr = json_pack("{s:s,s:[s,s]}", "allocationPolicy", "hashed",
                          "iotHubs", "eu-1", "nowhere-1");
  struct provd_call call = {0};
  struct alloc_input in = {.registration_id = "dev-1", .enrollment = enr,
                           .mechanism = "symmetricKey"};
  struct alloc_outcome out;
  allocator_run(alloc, &call, &in, &out);
  ck_assert_str_eq(out.hub, "eu-1");
  ck_assert_ptr_null(out.trace);
  alloc_outcome_clear(&out);

  in.want_trace = 1;
  allocator_run(alloc, &call, &in, &out);
  ck_assert_str_eq(out.hub, "eu-1");
  char *text = json_dumps(out.trace, JSON_COMPACT | JSON_SORT_KEYS);
  ck_assert_str_eq(text,
                   "{\"candidates\":[\"eu-1\"],"
                   "\"excluded\":[{\"hub\":\"nowhere-1\","
                   "\"why\":\"not a linked hub\"}],"
                   "\"hub\":\"eu-1\",\"policy\":\"hashed\","
                   "\"policySource\":\"enrollment\","
                   "\"steps\":[{\"hub\":\"eu-1\",\"policy\":\"hashed\","
                   "\"said\":\"hashed\"}]}");
  free(text);
  alloc_outcome_clear(&out);

  json_t *nowhere = json_pack("{s:[s]}", "iotHubs", "nowhere-1");
  in.enrollment = nowhere;
  allocator_run(alloc, &call, &in, &out);
  ck_assert_ptr_null(out.hub);
  ck_assert_str_eq(out.reason, "NO_HUB_AVAILABLE");
  ck_assert_str_eq(json_string_value(json_object_get(out.trace, "refused")),
                   "NO_HUB_AVAILABLE");
  ck_assert_str_eq(json_string_value(json_object_get(out.trace, "detail")),
                   "hub 'nowhere-1': not a linked hub");
  alloc_outcome_clear(&out);
  in.want_trace = 0;
  allocator_run(alloc, &call, &in, &out);
  ck_assert_str_eq(out.detail, "hub 'nowhere-1': not a linked hub");
  ck_assert_ptr_null(out.trace);
  alloc_outcome_clear(&out);
  json_decref(nowhere);
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
  tcase_add_test(tc, t_set_hubs_applies_at_once);
  tcase_add_test(tc, t_set_hubs_while_allocating);
  tcase_add_test(tc, t_unhealthy_hub_is_skipped_until_back);
  tcase_add_test(tc, t_trace_only_when_asked);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
