/* Recent operations: the answer to a device's status poll, kept in memory
 * for a short while after its registration committed.
 *
 * Devices poll GET .../operations/{operationId} right after register, with
 * the same SAS token.  An entry remembers which token authenticated the
 * operation (its SHA-256) and until when that token is valid, so a poll
 * presenting the byte-identical, unexpired token for the same registration
 * id is answered from memory on the event loop: no store read, no thread
 * hop.  Anything else (another token, an evicted or expired entry, a poll
 * that reached another provd instance) misses and takes the full path, so
 * correctness never depends on the cache.
 *
 * Fixed size (direct-mapped, newest wins), sharded locks, thread-safe. */
#ifndef CORE_ENGINE_OPCACHE_H
#define CORE_ENGINE_OPCACHE_H

#include <stddef.h>
#include <stdint.h>

struct opcache;

/* slots: number of entries (rounded up to a power of two); ttl_ms: how
 * long an answer is kept at most. */
struct opcache *opcache_new(size_t slots, int64_t ttl_ms);
void opcache_free(struct opcache *c);

/* Remembers the answer `body_json` (copied) to polls of operation_id. */
void opcache_put(struct opcache *c, const char *operation_id,
                 const char *registration_id, const char *authorization,
                 int64_t token_expiry_s, const char *body_json,
                 int64_t now_ms);

/* On a hit returns a copy of the answer (caller frees), else NULL. */
char *opcache_get(struct opcache *c, const char *operation_id,
                  const char *registration_id, const char *authorization,
                  int64_t now_ms);

#endif
