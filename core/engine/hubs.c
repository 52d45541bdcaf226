#include "engine/hubs.h"

#include <string.h>

#include "engine/allocation.h"
#include "plugin/loader.h"
#include "util/ids.h"
#include "util/timefmt.h"

int hubs_seed(struct store_session *s, const struct provd_config *cfg,
              struct provd_err *err)
{
  uint64_t have = 0;
  struct provd_query all = {.struct_size = sizeof(all)};
  int rc = store_count(s, PROVD_TABLE_HUBS, &all, &have, err);
  if (rc != PROVD_OK || have > 0 || cfg->n_hubs == 0)
    return rc;
  rc = store_tx_begin(s, err);
  int64_t now = time_now_ms();
  for (size_t i = 0; rc == PROVD_OK && i < cfg->n_hubs; i++) {
    const struct cfg_hub *h = &cfg->hubs[i];
    char etag[40];
    ids_etag(etag);
    struct store_rec rec = {
        .id = h->name, .etag = etag,
        .body = json_pack("{s:s,s:s,s:i,s:b,s:n,s:b}", "name", h->name,
                          "hostname", h->hostname, "weight", h->weight,
                          "applyAllocationPolicy",
                          h->apply_allocation_policy, "region", "removed",
                          0),
        .created_ms = now, .updated_ms = now};
    rc = store_put(s, PROVD_TABLE_HUBS, &rec, NULL, 0, err);
    json_decref(rec.body);
  }
  if (rc == PROVD_OK)
    return store_tx_commit(s, err);
  store_tx_rollback(s, NULL);
  return rc;
}

int hubs_read_all(struct store_session *s, json_t **out,
                  struct provd_err *err)
{
  struct store_rec *recs = NULL;
  size_t n = 0;
  *out = NULL;
  struct provd_query all = {.struct_size = sizeof(all)};
  int rc = store_list(s, PROVD_TABLE_HUBS, &all, &recs, &n, err);
  if (rc != PROVD_OK)
    return rc;
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++)
    json_array_append(arr, recs[i].body);
  store_recs_free(recs, n);
  if (!arr) {
    perr_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  *out = arr;
  return PROVD_OK;
}

/* A stored record with no applyAllocationPolicy (written by an older
 * provd) takes part in allocation, as the config's default says. */
static struct alloc_hub hub_of(const json_t *rec)
{
  const json_t *apply = json_object_get(rec, "applyAllocationPolicy");
  return (struct alloc_hub){
      .name = json_string_value(json_object_get(rec, "name")),
      .hostname = json_string_value(json_object_get(rec, "hostname")),
      .weight = (int)json_integer_value(json_object_get(rec, "weight")),
      .apply_allocation_policy = apply ? json_is_true(apply) : 1,
      .removed = json_is_true(json_object_get(rec, "removed")),
      .region = json_string_value(json_object_get(rec, "region"))};
}

int hubs_apply(struct engine *e, const json_t *records,
               struct provd_err *err)
{
  struct alloc_hub hubs[ALLOC_MAX_HUBS];
  size_t n = 0;
  size_t i;
  const json_t *rec;
  json_array_foreach(records, i, rec) {
    struct alloc_hub h = hub_of(rec);
    if (!h.name || !h.hostname)
      continue; /* not a hub record this version understands */
    if (n == ALLOC_MAX_HUBS) {
      perr_set(err, "TOO_MANY_HUBS", "at most %d linked hubs",
               ALLOC_MAX_HUBS);
      return PROVD_E_INVAL;
    }
    hubs[n++] = h;
  }
  return engine_set_hubs(e, hubs, n, err);
}

int hubs_reload(struct store_session *s, struct engine *e,
                struct provd_err *err)
{
  json_t *records = NULL;
  int rc = hubs_read_all(s, &records, err);
  if (rc == PROVD_OK)
    rc = hubs_apply(e, records, err);
  json_decref(records);
  return rc;
}
