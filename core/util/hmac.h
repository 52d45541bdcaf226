/* HMAC-SHA256, the one implementation the core uses (SAS tokens, group
 * key derivation, the plugins' host service). */
#ifndef CORE_UTIL_HMAC_H
#define CORE_UTIL_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define HMAC_SHA256_LEN 32

/* out = HMAC-SHA256(key, msg).  key and msg may be empty (NULL with
 * length 0).  0, or -1 when OpenSSL fails. */
int hmac_sha256(const void *key, size_t key_len, const void *msg,
                size_t msg_len, uint8_t out[HMAC_SHA256_LEN]);

#endif
