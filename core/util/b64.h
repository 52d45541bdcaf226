/* Base64 (RFC 4648 section 4: standard alphabet, padded). */
#ifndef CORE_UTIL_B64_H
#define CORE_UTIL_B64_H

#include <stddef.h>
#include <stdint.h>

/* Results of the functions below: 0 on success, else one of these. */
#define B64_BAD_INPUT (-1)
#define B64_TOO_SMALL (-2) /* the output does not fit out_cap */

/* Far above any key or signature; keeps the length arithmetic exact. */
#define B64_MAX_ENCODE_INPUT ((size_t)1 << 30)

/* Decodes exactly n characters.  Strict: refuses anything an RFC 4648
 * encoder would not produce (wrong length, whitespace, padding inside,
 * non-zero bits under the padding). */
int b64_decode_n(const char *in, size_t n, uint8_t *out, size_t out_cap,
                 size_t *out_len);
/* b64_decode_n of a NUL-ended string. */
int b64_decode(const char *in, uint8_t *out, size_t out_cap,
               size_t *out_len);

/* Characters an encoding of len bytes takes, without the NUL. */
size_t b64_encoded_len(size_t len);
/* Encodes into out (out_cap >= b64_encoded_len(len) + 1), NUL-ended;
 * *out_len (may be NULL) gets the characters. */
int b64_encode_to(const uint8_t *in, size_t len, char *out, size_t out_cap,
                  size_t *out_len);
/* A new NUL-ended string; caller frees.  NULL when out of memory. */
char *b64_encode(const uint8_t *in, size_t len);

#endif
