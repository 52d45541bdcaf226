#include "util/wake_batch.h"

#include <stdbool.h>
#include <stddef.h>

struct deferred {
  wake_batch_fn *fn;
  void *target;
};

static _Thread_local bool batching;
static _Thread_local size_t n_deferred;
static _Thread_local struct deferred deferred[WAKE_BATCH_MAX];

void wake_batch_begin(void)
{
  batching = true;
  n_deferred = 0;
}

enum wake_batch_result wake_batch_defer(wake_batch_fn *fn, void *target)
{
  if (!batching)
    return WAKE_NOW;
  for (size_t i = 0; i < n_deferred; i++)
    if (deferred[i].fn == fn && deferred[i].target == target)
      return WAKE_ALREADY_DEFERRED;
  if (n_deferred == WAKE_BATCH_MAX)
    return WAKE_NOW;
  deferred[n_deferred++] = (struct deferred){fn, target};
  return WAKE_DEFERRED;
}

void wake_batch_end(void)
{
  batching = false;
  for (size_t i = 0; i < n_deferred; i++)
    deferred[i].fn(deferred[i].target);
  n_deferred = 0;
}
