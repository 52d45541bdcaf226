#include "engine/ratelimit.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>

#define PROBE 4       /* slots a key may live in */
#define WINDOW_S 60

struct rate_slot {
  uint64_t key;      /* 0: free */
  int64_t window_s;  /* the key's first admission of its counted minute */
  uint32_t count;
};

struct rate_table {
  pthread_mutex_t mu;
  size_t mask;
  uint32_t per_minute;
  struct rate_slot slots[];
};

static uint64_t key_hash(const char *key)
{
  uint64_t h = 14695981039346656037ULL; /* FNV-1a, case-folded */
  for (const char *p = key; *p; p++)
    h = (h ^ (uint8_t)tolower((unsigned char)*p)) * 1099511628211ULL;
  return h ? h : 1;
}

struct rate_table *rate_table_new(size_t slots, uint32_t per_minute)
{
  size_t n = PROBE;
  while (n < slots)
    n <<= 1;
  struct rate_table *t = calloc(1, sizeof(*t) + n * sizeof(t->slots[0]));
  if (!t)
    return NULL;
  pthread_mutex_init(&t->mu, NULL);
  t->mask = n - 1;
  t->per_minute = per_minute;
  return t;
}

void rate_table_free(struct rate_table *t)
{
  if (!t)
    return;
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* The key's slot, else a free or expired one, else the stalest. */
static struct rate_slot *slot_for(struct rate_table *t, uint64_t key,
                                  int64_t window)
{
  struct rate_slot *reuse = NULL;
  for (size_t i = 0; i < PROBE; i++) {
    struct rate_slot *s = &t->slots[(key + i) & t->mask];
    if (s->key == key)
      return s;
    bool better = !reuse ||
                  (reuse->key != 0 &&
                   (s->key == 0 || s->window_s < reuse->window_s));
    if (better)
      reuse = s;
  }
  *reuse = (struct rate_slot){.key = key, .window_s = window};
  return reuse;
}

bool rate_table_admit(struct rate_table *t, const char *key, int64_t now_s)
{
  uint64_t h = key_hash(key);
  pthread_mutex_lock(&t->mu);
  struct rate_slot *s = slot_for(t, h, now_s);
  if (now_s - s->window_s >= WINDOW_S) { /* the key's minute is over */
    s->window_s = now_s;
    s->count = 0;
  }
  bool ok = s->count < t->per_minute;
  if (ok)
    s->count++;
  pthread_mutex_unlock(&t->mu);
  return ok;
}
