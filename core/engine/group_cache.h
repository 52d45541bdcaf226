/* The enrollment groups of one attestation mechanism, as attestation
 * plugins see them (caReferences resolved), kept between registrations
 * while neither the groups nor the registered CAs change.  Without it
 * every group registration lists and parses every group of its kind
 * again.  Stores other processes write (store_generation 0) are read
 * every time. */
#ifndef CORE_ENGINE_GROUP_CACHE_H
#define CORE_ENGINE_GROUP_CACHE_H

#include <jansson.h>
#include <stddef.h>

#include "store/store.h"

/* Immutable once built; shared by every thread that holds it. */
struct group_list {
  size_t n;
  struct store_rec *recs; /* as stored, in id order */
  json_t **seen;          /* what the plugin sees: recs[i].body or its
                             resolved copy; one reference each */
};

struct group_cache;

struct group_cache *group_cache_new(void);
void group_cache_free(struct group_cache *c);

/* The first `limit` groups of `mechanism` in id order: PROVD_OK with *out
 * (release it with group_list_release), or the store's error in err. */
int group_cache_get(struct group_cache *c, struct store_session *s,
                    const char *mechanism, size_t limit,
                    const struct group_list **out, struct provd_err *err);
void group_list_release(const struct group_list *l);

#endif
