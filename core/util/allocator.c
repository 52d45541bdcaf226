#include "allocator.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* jemalloc's control interface, looked up instead of linked so that a
 * build or process without jemalloc runs the same code. */
typedef int (*mallctl_fn)(const char *name, void *oldp, size_t *oldlenp,
                          void *newp, size_t newlen);

static mallctl_fn jemalloc_ctl(void)
{
  void *sym = dlsym(RTLD_DEFAULT, "mallctl");
  mallctl_fn fn;
  _Static_assert(sizeof sym == sizeof fn, "function pointers fit void *");
  __builtin_memcpy(&fn, &sym, sizeof fn);
  return fn;
}

const char *allocator_describe(void)
{
  static char text[160];
  mallctl_fn ctl = jemalloc_ctl();
  if (!ctl)
    return "glibc malloc";
  const char *version = "?";
  ssize_t decay_ms = -1;
  bool background = false;
  size_t len = sizeof version;
  ctl("version", &version, &len, NULL, 0);
  len = sizeof decay_ms;
  ctl("opt.dirty_decay_ms", &decay_ms, &len, NULL, 0);
  len = sizeof background;
  ctl("background_thread", &background, &len, NULL, 0);
  snprintf(text, sizeof text,
           "jemalloc %s (dirty_decay_ms %zd, background thread %s)", version,
           decay_ms, background ? "on" : "off");
  return text;
}

void allocator_release_free_memory(void)
{
  mallctl_fn ctl = jemalloc_ctl();
  if (!ctl) {
    malloc_trim(0);
    return;
  }
  /* MALLCTL_ARENAS_ALL is 4096 in jemalloc 5. */
  ctl("arena.4096.purge", NULL, NULL, NULL, 0);
}
