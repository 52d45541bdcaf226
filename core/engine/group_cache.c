#include "engine/group_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ca_refs.h"

/* Mechanisms with groups: symmetricKey, x509, tpm, and room for plugins'. */
#define CACHE_SLOTS 8

struct list_box {
  struct group_list list; /* first: a group_list pointer is its box's */
  atomic_size_t refs;
};

struct slot {
  char mechanism[64];
  size_t limit;
  uint64_t groups_gen, cas_gen; /* store_generation when it was read */
  struct list_box *box;         /* one reference, or NULL */
};

struct group_cache {
  pthread_mutex_t mu;
  struct slot slots[CACHE_SLOTS];
};

struct group_cache *group_cache_new(void)
{
  struct group_cache *c = calloc(1, sizeof(*c));
  if (c && pthread_mutex_init(&c->mu, NULL) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static void box_release(struct list_box *b)
{
  if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
    return;
  for (size_t i = 0; b->list.seen && i < b->list.n; i++)
    json_decref(b->list.seen[i]);
  free(b->list.seen);
  store_recs_free(b->list.recs, b->list.n);
  free(b);
}

void group_list_release(const struct group_list *l)
{
  box_release((struct list_box *)l);
}

void group_cache_free(struct group_cache *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < CACHE_SLOTS; i++)
    box_release(c->slots[i].box);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* *out: a box holding one reference, or NULL with the store's error. */
static int read_groups(struct store_session *s, const char *mechanism,
                       size_t limit, struct list_box **out,
                       struct provd_err *err)
{
  struct provd_query q = {.struct_size = sizeof(q), .kind = mechanism,
                          .limit = limit};
  *out = NULL;
  struct list_box *b = calloc(1, sizeof(*b));
  if (!b) {
    perr_set(err, "STORE_NOMEM", "no memory for the enrollment groups");
    return PROVD_E_NOMEM;
  }
  atomic_init(&b->refs, 1);
  int rc = store_list(s, PROVD_TABLE_ENROLLMENT_GROUPS, &q, &b->list.recs,
                      &b->list.n, err);
  if (rc == PROVD_OK &&
      !(b->list.seen = calloc(b->list.n + 1, sizeof(json_t *)))) {
    perr_set(err, "STORE_NOMEM", "no memory for the enrollment groups");
    rc = PROVD_E_NOMEM;
  }
  if (rc != PROVD_OK) {
    box_release(b);
    return rc;
  }
  for (size_t i = 0; i < b->list.n; i++) {
    json_t *resolved = ca_refs_resolve(s, b->list.recs[i].body);
    b->list.seen[i] = resolved ? resolved : json_incref(b->list.recs[i].body);
  }
  *out = b;
  return PROVD_OK;
}

/* The slot for mechanism: its own, else an empty one, else the first. */
static struct slot *slot_for(struct group_cache *c, const char *mechanism)
{
  struct slot *empty = NULL;
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    struct slot *sl = &c->slots[i];
    if (sl->box && strcmp(sl->mechanism, mechanism) == 0)
      return sl;
    if (!sl->box && !empty)
      empty = sl;
  }
  return empty ? empty : &c->slots[0];
}

int group_cache_get(struct group_cache *c, struct store_session *s,
                    const char *mechanism, size_t limit,
                    const struct group_list **out, struct provd_err *err)
{
  /* Taken before reading: a change after it makes the copy stale. */
  uint64_t groups_gen = store_generation(s, PROVD_TABLE_ENROLLMENT_GROUPS);
  uint64_t cas_gen = store_generation(s, PROVD_TABLE_CERTIFICATES);
  int cacheable = groups_gen && cas_gen &&
                  strlen(mechanism) < sizeof(c->slots[0].mechanism);
  struct list_box *b = NULL;
  if (cacheable) {
    pthread_mutex_lock(&c->mu);
    struct slot *sl = slot_for(c, mechanism);
    if (sl->box && strcmp(sl->mechanism, mechanism) == 0 &&
        sl->limit == limit && sl->groups_gen == groups_gen &&
        sl->cas_gen == cas_gen) {
      b = sl->box;
      atomic_fetch_add(&b->refs, 1);
    }
    pthread_mutex_unlock(&c->mu);
  }
  if (!b) {
    int rc = read_groups(s, mechanism, limit, &b, err);
    if (rc != PROVD_OK)
      return rc;
    if (cacheable) {
      struct list_box *old;
      atomic_fetch_add(&b->refs, 1);
      pthread_mutex_lock(&c->mu);
      struct slot *sl = slot_for(c, mechanism);
      old = sl->box;
      snprintf(sl->mechanism, sizeof(sl->mechanism), "%s", mechanism);
      sl->limit = limit;
      sl->groups_gen = groups_gen;
      sl->cas_gen = cas_gen;
      sl->box = b;
      pthread_mutex_unlock(&c->mu);
      box_release(old);
    }
  }
  *out = &b->list;
  return PROVD_OK;
}
