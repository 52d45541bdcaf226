/* The hashed allocation plugin, loaded from its .so through the real
 * loader and host table: stability, weights, the rendezvous property, and
 * agreement with the hash function documented in docs/plugins/hashed.md
 * (recomputed here with OpenSSL, and pinned as golden values). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "config/config.h"
#include "plugin/loader.h"
#include "provd/alloc.h"
#include "provd/host.h"
#include "provd/plugin.h"
#include "util/err.h"

#define N_IDS 100000

static const struct provd_plugin *desc;
static const struct provd_alloc_ops *ops;

struct inst {
  struct plugin_instance pi;
  void *state;
};

static void load_plugin(void)
{
  const char *dir = getenv("PROVD_PLUGIN_DIR");
  ck_assert_msg(dir != NULL, "PROVD_PLUGIN_DIR is not set");
  char path[4096];
  snprintf(path, sizeof(path), "%s/hashed.so", dir);
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(plugin_open(path, &desc, &err) == PROVD_OK, "%s: %s", path,
                err.msg);
  ops = desc->ops;
}

static void inst_open(struct inst *in, const char *seed)
{
  if (!desc)
    load_plugin();
  memset(in, 0, sizeof(*in));
  in->pi.desc = desc;
  in->pi.kind = PROVD_KIND_ALLOCATION;
  in->pi.name = (char *)"hashed";
  in->pi.id = (char *)"hashed";
  pthread_mutex_init(&in->pi.op_lock, NULL);
  if (seed) {
    in->pi.options = json_object();
    json_object_set_new(in->pi.options, "seed", json_string(seed));
  } else { /* the schema defaults, as the daemon applies them */
    struct cfg_pos where = {"test", 1, 1};
    struct diag d = {0};
    ck_assert_int_eq(config_check_options(desc->options, NULL, &where,
                                          "hashed", &in->pi.options, &d),
                     0);
    diag_free(&d);
  }
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(desc->lifecycle->create(host_api(),
                                           (struct provd_instance *)&in->pi,
                                           &in->state, &err),
                   PROVD_OK);
  ck_assert_int_eq(desc->lifecycle->configure(
                       in->state, cfg_from_json(in->pi.options), &err),
                   PROVD_OK);
}

static void inst_close(struct inst *in)
{
  desc->lifecycle->destroy(in->state);
  json_decref(in->pi.options);
  pthread_mutex_destroy(&in->pi.op_lock);
}

/* A candidate list built from parallel arrays. */
struct hubs {
  struct provd_hub_info info[8];
  const struct provd_hub_info *ptr[8];
  size_t n;
};

static void hubs_make(struct hubs *h, const char *const *names,
                      const uint32_t *weights, size_t n)
{
  ck_assert_uint_le(n, 8);
  memset(h, 0, sizeof(*h));
  for (size_t i = 0; i < n; i++) {
    h->info[i].struct_size = sizeof(h->info[i]);
    h->info[i].name = names[i];
    h->info[i].hostname = names[i];
    h->info[i].weight = weights[i];
    h->ptr[i] = &h->info[i];
  }
  h->n = n;
}

/* Index into h of the hub the plugin picks for reg_id. */
static int pick(struct inst *in, const struct hubs *h, const char *reg_id)
{
  struct provd_alloc_request req = {
      .struct_size = sizeof(req),
      .registration_id = reg_id,
      .hubs = h->ptr,
      .n_hubs = h->n,
  };
  struct provd_alloc_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err = {{0}, {0}};
  int rc = ops->allocate(in->state, NULL, &req, &res, &err);
  ck_assert_msg(rc == PROVD_OK, "allocate(%s): %d %s", reg_id, rc, err.msg);
  ck_assert_str_eq(res.reason, "hashed");
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(res.hub, h->info[i].name) == 0)
      return (int)i;
  ck_abort_msg("allocate(%s) picked unknown hub '%s'", reg_id, res.hub);
  return -1;
}

static void reg_id(char *out, size_t cap, int i)
{
  snprintf(out, cap, "device-%06d", i);
}

/* ---- the documented hash, independently ---- */

static double ref_score(const char *id, const char *hub, const char *seed,
                        uint32_t weight)
{
  unsigned char msg[512], d[SHA256_DIGEST_LENGTH];
  size_t n = 0;
  for (const char *p = id; *p; p++)
    msg[n++] = (unsigned char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
  msg[n++] = 0;
  memcpy(msg + n, hub, strlen(hub));
  n += strlen(hub);
  if (*seed) {
    msg[n++] = 0;
    memcpy(msg + n, seed, strlen(seed));
    n += strlen(seed);
  }
  SHA256(msg, n, d);
  uint64_t h = 0;
  for (int i = 0; i < 8; i++)
    h = h << 8 | d[i];
  double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
  return -(double)weight / log(u);
}

static int ref_pick(const struct hubs *h, const char *id, const char *seed)
{
  int best = -1;
  double best_score = 0;
  for (size_t i = 0; i < h->n; i++) {
    double s = ref_score(id, h->info[i].name, seed, h->info[i].weight);
    if (best < 0 || s > best_score ||
        (s == best_score && strcmp(h->info[i].name, h->info[best].name) < 0)) {
      best = (int)i;
      best_score = s;
    }
  }
  return best;
}

static const char *const names3[] = {"hub-a", "hub-b", "hub-c"};

/* ---- tests ---- */

START_TEST(t_descriptor)
{
  load_plugin();
  ck_assert_str_eq(desc->name, "hashed");
  ck_assert_int_eq(desc->kind, PROVD_KIND_ALLOCATION);
  ck_assert(desc->flags & PROVD_PLUGIN_THREADSAFE);
  ck_assert_str_eq(ops->policy, "hashed");
  ck_assert_str_eq(desc->options[0].name, "seed");
  ck_assert_int_eq(desc->options[0].type, PROVD_OPT_STRING);
  ck_assert_str_eq(desc->options[0].default_value, "");
  ck_assert_ptr_null(desc->options[1].name);
}
END_TEST

/* Same id, same hub: twice on one instance and on a second instance. */
START_TEST(t_stable)
{
  struct inst a, b;
  inst_open(&a, NULL);
  inst_open(&b, "");
  static const uint32_t w[] = {1, 2, 7};
  struct hubs h;
  hubs_make(&h, names3, w, 3);
  for (int i = 0; i < 2000; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    int first = pick(&a, &h, id);
    ck_assert_int_eq(pick(&a, &h, id), first);
    ck_assert_int_eq(pick(&b, &h, id), first);
  }
  inst_close(&a);
  inst_close(&b);
}
END_TEST

/* The plugin computes exactly the documented function. */
START_TEST(t_matches_documented_hash)
{
  const char *seed = _i ? "reshuffle-2026" : "";
  struct inst a;
  inst_open(&a, seed);
  static const uint32_t w[] = {3, 1, 5};
  struct hubs h;
  hubs_make(&h, names3, w, 3);
  for (int i = 0; i < 3000; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    ck_assert_int_eq(pick(&a, &h, id), ref_pick(&h, id, seed));
  }
  inst_close(&a);
}
END_TEST

/* Golden values, so that the function cannot change together with the
 * reference copy above: the hub picked for device-000000 .. device-000047
 * (last letter of its name), computed once from docs/plugins/hashed.md
 * outside this code.  Worked by hand for device-000000, weights 3/1/5:
 *   SHA-256("device-000000\0hub-a") = 94dcd3d23bcac5a9...  u = 0.58149
 *     score = -3 / ln(u) = 5.533
 *   SHA-256("device-000000\0hub-b") = fd2a00d92c9a4780...  u = 0.98892
 *     score = -1 / ln(u) = 89.769   <- highest: hub-b
 *   SHA-256("device-000000\0hub-c") = 0f9a55523cc34d4a...  u = 0.06095
 *     score = -5 / ln(u) = 1.787
 * A different string here means devices move to other hubs. */
static const char golden_no_seed[] =
    "bccbccbccaaacccbcaacacccaccccacaaccaaaccaccccccc";
static const char golden_seeded[] =
    "aacbcccbaaacccbacaaaaaaaccccacccccaaaaccabaccbac";

START_TEST(t_golden_values)
{
  const char *seed = _i ? "reshuffle-2026" : "";
  const char *golden = _i ? golden_seeded : golden_no_seed;
  struct inst a;
  inst_open(&a, seed);
  static const uint32_t w[] = {3, 1, 5};
  struct hubs h;
  hubs_make(&h, names3, w, 3);
  char got[64] = {0};
  for (size_t i = 0; i < strlen(golden); i++) {
    char id[32];
    reg_id(id, sizeof(id), (int)i);
    got[i] = names3[pick(&a, &h, id)][4];
  }
  ck_assert_str_eq(got, golden);
  inst_close(&a);
}
END_TEST

/* Registration ids are case-insensitive; so is the hash. */
START_TEST(t_case_insensitive)
{
  struct inst a;
  inst_open(&a, NULL);
  static const uint32_t w[] = {1, 1, 1};
  struct hubs h;
  hubs_make(&h, names3, w, 3);
  for (int i = 0; i < 500; i++) {
    char lo[32], up[32];
    snprintf(lo, sizeof(lo), "sensor-%d-abc", i);
    snprintf(up, sizeof(up), "SENSOR-%d-AbC", i);
    ck_assert_int_eq(pick(&a, &h, lo), pick(&a, &h, up));
  }
  inst_close(&a);
}
END_TEST

/* The order of the candidate list does not matter. */
START_TEST(t_order_independent)
{
  struct inst a;
  inst_open(&a, NULL);
  static const char *const rev_names[] = {"hub-c", "hub-b", "hub-a"};
  static const uint32_t w[] = {1, 2, 3}, rw[] = {3, 2, 1};
  struct hubs h, r;
  hubs_make(&h, names3, w, 3);
  hubs_make(&r, rev_names, rw, 3);
  for (int i = 0; i < 1000; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    ck_assert_int_eq(pick(&a, &h, id), 2 - pick(&a, &r, id));
  }
  inst_close(&a);
}
END_TEST

/* Each hub gets weight / sum(weights) of 100,000 ids, within 5 %. */
static void check_distribution(const uint32_t *w, size_t n)
{
  static const char *const names[] = {"hub-1", "hub-2", "hub-3", "hub-4"};
  struct inst a;
  inst_open(&a, NULL);
  struct hubs h;
  hubs_make(&h, names, w, n);
  long count[4] = {0};
  for (int i = 0; i < N_IDS; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    count[pick(&a, &h, id)]++;
  }
  double sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += w[i];
  for (size_t i = 0; i < n; i++) {
    double expect = N_IDS * w[i] / sum;
    ck_assert_msg(fabs(count[i] - expect) <= 0.05 * expect,
                  "hub %zu (weight %u): %ld devices, expected %.0f +- 5%%",
                  i, w[i], count[i], expect);
  }
  inst_close(&a);
}

START_TEST(t_distribution_1_1)
{
  static const uint32_t w[] = {1, 1};
  check_distribution(w, 2);
}
END_TEST

START_TEST(t_distribution_1_3)
{
  static const uint32_t w[] = {1, 3};
  check_distribution(w, 2);
}
END_TEST

START_TEST(t_distribution_1_2_7)
{
  static const uint32_t w[] = {1, 2, 7};
  check_distribution(w, 3);
}
END_TEST

/* Removing a hub moves only the devices that were on it; adding one moves
 * devices only onto the new hub. */
START_TEST(t_rendezvous)
{
  struct inst a;
  inst_open(&a, NULL);
  static const char *const two[] = {"hub-a", "hub-c"};
  static const uint32_t w3[] = {1, 2, 3}, w2[] = {1, 3};
  struct hubs full, less;
  hubs_make(&full, names3, w3, 3);
  hubs_make(&less, two, w2, 2);
  int moved = 0, on_b = 0;
  for (int i = 0; i < 20000; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    const char *before = names3[pick(&a, &full, id)];
    const char *after = two[pick(&a, &less, id)];
    if (strcmp(before, "hub-b") == 0)
      on_b++;
    else
      ck_assert_str_eq(after, before); /* removal of b */
    if (strcmp(before, after) != 0) {
      moved++;
      ck_assert_str_eq(before, "hub-b"); /* addition of b */
    }
  }
  ck_assert_int_eq(moved, on_b);
  ck_assert_int_gt(on_b, 0);
  inst_close(&a);
}
END_TEST

/* A different seed reshuffles: about half the devices of two equal hubs
 * move.  The same seed keeps them. */
START_TEST(t_seed_reshuffles)
{
  struct inst plain, seeded, seeded2;
  inst_open(&plain, NULL);
  inst_open(&seeded, "2026-q4");
  inst_open(&seeded2, "2026-q4");
  static const uint32_t w[] = {1, 1};
  struct hubs h;
  hubs_make(&h, names3, w, 2);
  int differ = 0;
  for (int i = 0; i < 4000; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    int s = pick(&seeded, &h, id);
    ck_assert_int_eq(pick(&seeded2, &h, id), s);
    differ += pick(&plain, &h, id) != s;
  }
  ck_assert_msg(differ > 1600 && differ < 2400, "%d of 4000 moved", differ);
  inst_close(&plain);
  inst_close(&seeded);
  inst_close(&seeded2);
}
END_TEST

START_TEST(t_single_hub)
{
  struct inst a;
  inst_open(&a, NULL);
  static const uint32_t w[] = {1000};
  struct hubs h;
  hubs_make(&h, names3 + 1, w, 1);
  for (int i = 0; i < 100; i++) {
    char id[32];
    reg_id(id, sizeof(id), i);
    ck_assert_int_eq(pick(&a, &h, id), 0);
  }
  inst_close(&a);
}
END_TEST

static int deny_code(struct inst *in, const struct hubs *h, char *code)
{
  struct provd_alloc_request req = {
      .struct_size = sizeof(req),
      .registration_id = "dev-1",
      .hubs = h ? h->ptr : NULL,
      .n_hubs = h ? h->n : 0,
  };
  struct provd_alloc_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err = {{0}, {0}};
  int rc = ops->allocate(in->state, NULL, &req, &res, &err);
  memcpy(code, err.code, sizeof(err.code));
  ck_assert_str_eq(res.hub, "");
  return rc;
}

START_TEST(t_no_hub)
{
  struct inst a;
  inst_open(&a, NULL);
  char code[64];
  ck_assert_int_eq(deny_code(&a, NULL, code), PROVD_DENIED);
  ck_assert_str_eq(code, "NO_HUB_AVAILABLE");
  struct hubs h;
  hubs_make(&h, names3, (const uint32_t[]){1}, 0);
  ck_assert_int_eq(deny_code(&a, &h, code), PROVD_DENIED);
  ck_assert_str_eq(code, "NO_HUB_AVAILABLE");
  /* Weight 0 never receives devices. */
  hubs_make(&h, names3, (const uint32_t[]){0, 0}, 2);
  ck_assert_int_eq(deny_code(&a, &h, code), PROVD_DENIED);
  ck_assert_str_eq(code, "NO_HUB_AVAILABLE");
  inst_close(&a);
}
END_TEST

static Suite *hashed_suite(void)
{
  Suite *s = suite_create("hashed");
  TCase *tc = tcase_create("hashed");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, t_descriptor);
  tcase_add_test(tc, t_stable);
  tcase_add_loop_test(tc, t_matches_documented_hash, 0, 2);
  tcase_add_loop_test(tc, t_golden_values, 0, 2);
  tcase_add_test(tc, t_case_insensitive);
  tcase_add_test(tc, t_order_independent);
  tcase_add_test(tc, t_distribution_1_1);
  tcase_add_test(tc, t_distribution_1_3);
  tcase_add_test(tc, t_distribution_1_2_7);
  tcase_add_test(tc, t_rendezvous);
  tcase_add_test(tc, t_seed_reshuffles);
  tcase_add_test(tc, t_single_hub);
  tcase_add_test(tc, t_no_hub);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(hashed_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
