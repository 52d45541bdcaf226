/* Percent-encoding of URL components (RFC 3986 section 2.1). */
#ifndef CORE_UTIL_URL_H
#define CORE_UTIL_URL_H

#include <stddef.h>

/* Percent-decoding ("+" stays "+").  0 on success, -1 on a bad escape,
 * %00, or overflow. */
int url_decode(const char *in, size_t in_len, char *out, size_t out_cap);
/* Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (uppercase hex).
 * 0 on success, -1 on overflow. */
int url_encode(const char *in, char *out, size_t out_cap);

#endif
