/* Recent operations: the answer to a device's status poll, kept in memory
 * for a short while after its registration committed.
 *
 * Devices poll GET .../operations/{operationId} right after register,
 * presenting the same credential (SAS token, or TLS client certificate).
 * An entry remembers the SHA-256 of the credential bytes that
 * authenticated the operation and until when the attestation plugin said
 * they prove the device, so a poll presenting byte-identical credential
 * bytes for the same operation and registration id before then is
 * answered from memory on the event loop: no store read, no thread hop,
 * no plugin call.  The cache does not know what the bytes mean.  Anything
 * else (other bytes, an evicted or expired entry, a poll that reached
 * another provd instance) misses and takes the full path, so correctness
 * never depends on the cache.
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
                 const char *registration_id, const char *credential,
                 int64_t reuse_until_s, const char *body_json,
                 int64_t now_ms);

/* On a hit returns a copy of the answer (caller frees), else NULL. */
char *opcache_get(struct opcache *c, const char *operation_id,
                  const char *registration_id, const char *credential,
                  int64_t now_ms);

#endif
