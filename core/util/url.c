/* Percent-encoding of URL components. */
#include "util/url.h"

#include <stddef.h>

#include "util/num.h"

/* 0 on success, like every helper here (callers test `!= 0` or `< 0`).
 * "%00" is refused as well: a NUL in the middle would let
 * "scope/registrations/dev%00junk" compare equal to a shorter resource.
 * Safe in place (out == in): the write index never passes the read index. */
int url_decode(const char *in, size_t in_len, char *out, size_t out_cap)
{
  if (!in || !out || out_cap == 0)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < in_len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '%') {
      if (i + 2 >= in_len)
        return -1;
      int hi = num_hex_digit((unsigned char)in[i + 1]);
      int lo = hi < 0 ? -1 : num_hex_digit((unsigned char)in[i + 2]);
      if (lo < 0 || (hi == 0 && lo == 0))
        return -1;
      c = (unsigned char)(hi << 4 | lo);
      i += 2;
    } else if (c == '\0') {
      return -1;
    }
    if (o + 1 >= out_cap)
      return -1;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return 0;
}

static int url_unreserved(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

int url_encode(const char *in, char *out, size_t out_cap)
{
  static const char hex[] = "0123456789ABCDEF";
  if (!in || !out || out_cap == 0)
    return -1;
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    size_t need = url_unreserved(*p) ? 1 : 3;
    if (o + need >= out_cap)
      return -1;
    if (need == 1) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
  return 0;
}
