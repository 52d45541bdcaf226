#include "trust.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct slot {
  uint8_t key[TRUST_KEY_LEN];
  struct trust t;
  uint64_t last_used; /* 0: empty */
};

struct trust_cache {
  pthread_mutex_t lock;
  uint64_t tick;
  size_t n;
  struct slot slots[];
};

void trust_clear(struct trust *t)
{
  X509_free(t->anchors[0]);
  X509_free(t->anchors[1]);
  free(t->anchor_info[0]);
  free(t->anchor_info[1]);
  sk_X509_CRL_pop_free(t->crls, X509_CRL_free);
  memset(t, 0, sizeof(*t));
}

/* dst gets its own references to src's objects; 0, or -1 (dst empty). */
static int trust_share(const struct trust *src, struct trust *dst)
{
  memset(dst, 0, sizeof(*dst));
  for (size_t i = 0; i < 2; i++) {
    if (src->anchors[i] && X509_up_ref(src->anchors[i]))
      dst->anchors[i] = src->anchors[i];
    if (src->anchor_info[i] &&
        !(dst->anchor_info[i] = strdup(src->anchor_info[i]))) {
      trust_clear(dst);
      return -1;
    }
  }
  if (src->crls) {
    dst->crls = sk_X509_CRL_new_null();
    for (int i = 0; dst->crls && i < sk_X509_CRL_num(src->crls); i++) {
      X509_CRL *crl = sk_X509_CRL_value(src->crls, i);
      if (!X509_CRL_up_ref(crl))
        break;
      if (!sk_X509_CRL_push(dst->crls, crl)) {
        X509_CRL_free(crl);
        break;
      }
    }
    if (!dst->crls ||
        sk_X509_CRL_num(dst->crls) != sk_X509_CRL_num(src->crls)) {
      trust_clear(dst);
      return -1;
    }
  }
  return 0;
}

struct trust_cache *trust_cache_new(size_t slots)
{
  struct trust_cache *c = calloc(1, sizeof(*c) + slots * sizeof(c->slots[0]));
  if (!c)
    return NULL;
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return NULL;
  }
  c->n = slots;
  return c;
}

void trust_cache_free(struct trust_cache *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    trust_clear(&c->slots[i].t);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

int trust_cache_get(struct trust_cache *c, const uint8_t key[TRUST_KEY_LEN],
                    struct trust *out)
{
  int hit = 0;
  pthread_mutex_lock(&c->lock);
  for (size_t i = 0; i < c->n && !hit; i++) {
    struct slot *s = &c->slots[i];
    if (s->last_used && memcmp(s->key, key, TRUST_KEY_LEN) == 0) {
      hit = trust_share(&s->t, out) == 0;
      s->last_used = ++c->tick;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return hit;
}

void trust_cache_put(struct trust_cache *c, const uint8_t key[TRUST_KEY_LEN],
                     const struct trust *t)
{
  struct trust copy;
  if (trust_share(t, &copy) != 0)
    return;
  pthread_mutex_lock(&c->lock);
  struct slot *victim = &c->slots[0];
  for (size_t i = 0; i < c->n; i++) {
    struct slot *s = &c->slots[i];
    if (s->last_used && memcmp(s->key, key, TRUST_KEY_LEN) == 0) {
      victim = s; /* another thread parsed the same texts meanwhile */
      break;
    }
    if (s->last_used < victim->last_used)
      victim = s;
  }
  struct trust old = victim->t;
  memcpy(victim->key, key, TRUST_KEY_LEN);
  victim->t = copy;
  victim->last_used = ++c->tick;
  pthread_mutex_unlock(&c->lock);
  trust_clear(&old);
}
