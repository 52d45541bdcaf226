/* The process's memory allocator: jemalloc when the daemon is linked with
 * it (the default build, see CMakeLists.txt PROVD_JEMALLOC) or it is
 * preloaded, else glibc's malloc.  Found at run time, so the same code
 * serves the daemon, the tools and the tests. */
#ifndef CORE_UTIL_ALLOCATOR_H
#define CORE_UTIL_ALLOCATOR_H

/* "jemalloc 5.3.0-0-g... (dirty_decay_ms 1000, background thread on)" or
 * "glibc malloc"; a static string, valid until exit (first call from one
 * thread: the daemon's start-up). */
const char *allocator_describe(void);

/* Gives freed memory back to the system now (after a flood of
 * connections): every jemalloc arena purged, or glibc's malloc_trim. */
void allocator_release_free_memory(void);

#endif
