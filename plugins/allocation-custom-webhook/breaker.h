/* Circuit breaker of the custom allocation webhook: after `threshold`
 * consecutive failures the webhook is not called for `cooldown_ns`; then
 * one call (the probe) goes through while the others keep using the
 * fallback, and its outcome closes or reopens the breaker. */
#ifndef CUSTOM_BREAKER_H
#define CUSTOM_BREAKER_H

#include <pthread.h>
#include <stdint.h>

struct breaker {
  pthread_mutex_t lock;
  uint32_t threshold;     /* 0: never opens */
  uint64_t cooldown_ns;
  uint32_t failures;      /* consecutive */
  uint64_t open_until_ns; /* 0: closed */
  int probing;            /* a probe is in flight */
};

void breaker_init(struct breaker *b, uint32_t threshold, uint64_t cooldown_ns);
void breaker_destroy(struct breaker *b);
/* 1 when this call may go to the webhook (closed, or the probe). */
int breaker_allow(struct breaker *b, uint64_t now_ns);
void breaker_record(struct breaker *b, int ok, uint64_t now_ns);

#endif
