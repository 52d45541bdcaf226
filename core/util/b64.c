/* Base64 (RFC 4648, standard alphabet, padded, strict). */
#include "util/b64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of one base64 digit, or -1. */
static int b64_digit(unsigned char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/* Rejects anything an RFC 4648 encoder would not produce: wrong length,
 * characters outside the alphabet (whitespace included), padding anywhere
 * but at the end, and non-zero bits under the padding. */
int b64_decode_n(const char *in, size_t n, uint8_t *out, size_t out_cap,
                 size_t *out_len)
{
  if ((!in && n > 0) || !out_len || n % 4 != 0)
    return B64_BAD_INPUT;
  size_t pad = 0;
  if (n >= 4 && in[n - 1] == '=')
    pad = in[n - 2] == '=' ? 2 : 1;
  size_t need = n / 4 * 3 - pad;
  if (need > out_cap || (need > 0 && !out))
    return B64_TOO_SMALL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int last = i + 4 == n;
    int d[4];
    for (size_t k = 0; k < 4; k++) {
      unsigned char c = (unsigned char)in[i + k];
      if (c == '=' && last && k >= 4 - pad)
        d[k] = 0;
      else if ((d[k] = b64_digit(c)) < 0)
        return B64_BAD_INPUT;
    }
    uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 |
                 (uint32_t)d[2] << 6 | (uint32_t)d[3];
    size_t take = last ? 3 - pad : 3;
    /* Bits that padding hides must be zero (canonical encoding). */
    if (last && pad == 1 && (v & 0xffu))
      return B64_BAD_INPUT;
    if (last && pad == 2 && (v & 0xffffu))
      return B64_BAD_INPUT;
    for (size_t k = 0; k < take; k++)
      out[o++] = (uint8_t)(v >> (16 - 8 * k));
  }
  *out_len = o;
  return 0;
}

int b64_decode(const char *in, uint8_t *out, size_t out_cap,
               size_t *out_len)
{
  if (!in)
    return B64_BAD_INPUT;
  return b64_decode_n(in, strlen(in), out, out_cap, out_len);
}

size_t b64_encoded_len(size_t len)
{
  return (len + 2) / 3 * 4;
}

int b64_encode_to(const uint8_t *in, size_t len, char *out, size_t out_cap,
                  size_t *out_len)
{
  if ((!in && len > 0) || !out || len > B64_MAX_ENCODE_INPUT)
    return B64_BAD_INPUT;
  if (b64_encoded_len(len) >= out_cap)
    return B64_TOO_SMALL;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    size_t rest = len - i;
    uint32_t v = (uint32_t)in[i] << 16;
    if (rest > 1)
      v |= (uint32_t)in[i + 1] << 8;
    if (rest > 2)
      v |= in[i + 2];
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = rest > 1 ? b64_alphabet[v >> 6 & 63] : '=';
    out[o++] = rest > 2 ? b64_alphabet[v & 63] : '=';
  }
  out[o] = '\0';
  if (out_len)
    *out_len = o;
  return 0;
}

char *b64_encode(const uint8_t *in, size_t len)
{
  if ((!in && len > 0) || len > B64_MAX_ENCODE_INPUT)
    return NULL;
  size_t cap = b64_encoded_len(len) + 1;
  char *s = malloc(cap);
  if (s && b64_encode_to(in, len, s, cap, NULL) != 0) {
    free(s);
    s = NULL;
  }
  return s;
}
