/* Base64 (RFC 4648 section 4: standard alphabet, padded). */
#ifndef CORE_UTIL_B64_H
#define CORE_UTIL_B64_H

#include <stddef.h>
#include <stdint.h>

/* Strict: refuses anything an RFC 4648 encoder would not produce.  -1 on
 * bad input or when out_cap is too small. */
int b64_decode(const char *in, uint8_t *out, size_t out_cap,
               size_t *out_len);
/* A new NUL-ended string; caller frees.  NULL when out of memory. */
char *b64_encode(const uint8_t *in, size_t len);

#endif
