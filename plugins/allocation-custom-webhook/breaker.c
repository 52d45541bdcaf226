#include "breaker.h"

void breaker_init(struct breaker *b, uint32_t threshold, uint64_t cooldown_ns)
{
  pthread_mutex_init(&b->lock, NULL);
  b->threshold = threshold;
  b->cooldown_ns = cooldown_ns;
  b->failures = 0;
  b->open_until_ns = 0;
  b->probing = 0;
}

void breaker_destroy(struct breaker *b)
{
  pthread_mutex_destroy(&b->lock);
}

int breaker_allow(struct breaker *b, uint64_t now_ns)
{
  pthread_mutex_lock(&b->lock);
  int allow = 1;
  if (b->open_until_ns) {
    allow = now_ns >= b->open_until_ns && !b->probing;
    if (allow)
      b->probing = 1;
  }
  pthread_mutex_unlock(&b->lock);
  return allow;
}

void breaker_record(struct breaker *b, int ok, uint64_t now_ns)
{
  pthread_mutex_lock(&b->lock);
  b->probing = 0;
  if (ok) {
    b->failures = 0;
    b->open_until_ns = 0;
  } else if (b->threshold && ++b->failures >= b->threshold) {
    b->open_until_ns = now_ns + b->cooldown_ns;
  }
  pthread_mutex_unlock(&b->lock);
}
