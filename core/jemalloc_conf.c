/* Linked into the programs that run on jemalloc (provd_use_jemalloc in
 * CMakeLists.txt); jemalloc reads it at its first allocation.  Freed pages
 * go back to the kernel within about a second (jemalloc's default is
 * 10 s), and a background thread does it, so an idle daemon returns the
 * memory of a burst of connections instead of keeping it until its next
 * allocation.  The MALLOC_CONF environment variable still overrides it. */
__attribute__((visibility("default"))) const char *malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
