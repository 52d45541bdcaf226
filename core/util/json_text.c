#include "util/json_text.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 1024

struct out {
  char *buf;
  size_t len; /* of the whole text so far, written or not */
  size_t cap;
  bool grows; /* buf is ours: realloc it instead of only counting */
  bool failed;
  int flags;
};

static bool make_room(struct out *o, size_t n)
{
  size_t cap = o->cap ? o->cap : FIRST_CAP;
  while (cap < o->len + n + 1) /* + 1: json_text's NUL */
    cap *= 2;
  char *nb = realloc(o->buf, cap);
  if (!nb)
    return false;
  o->buf = nb;
  o->cap = cap;
  return true;
}

static void put(struct out *o, const char *s, size_t n)
{
  if (o->len + n > o->cap && o->grows && !make_room(o, n)) {
    o->failed = true;
    return;
  }
  if (o->len + n <= o->cap)
    memcpy(o->buf + o->len, s, n);
  o->len += n;
}

/* One UTF-8 sequence starting at s (at most n bytes): its length, with
 * the code point in *cp; 0 when it is not valid UTF-8 (jansson's rules:
 * no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
  size_t len;
  uint32_t v;
  if (s[0] >= 0xC2 && s[0] <= 0xDF) {
    len = 2;
    v = s[0] & 0x1F;
  } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
    len = 3;
    v = s[0] & 0x0F;
  } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
    len = 4;
    v = s[0] & 0x07;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) ||
      (len == 3 && v < 0x800) || (len == 4 && v < 0x10000))
    return 0;
  *cp = v;
  return len;
}

static void put_u_escape(struct out *o, uint32_t cp)
{
  char seq[16];
  if (cp < 0x10000) {
    snprintf(seq, sizeof(seq), "\\u%04X", (unsigned)cp);
  } else { /* a UTF-16 surrogate pair */
    cp -= 0x10000;
    snprintf(seq, sizeof(seq), "\\u%04X\\u%04X",
             (unsigned)(0xD800 | (cp >> 10)), (unsigned)(0xDC00 | (cp & 0x3FF)));
  }
  put(o, seq, strlen(seq));
}

static void put_escape(struct out *o, unsigned char c)
{
  static const char *const named[] = {
      ['"'] = "\\\"", ['\\'] = "\\\\", ['\b'] = "\\b", ['\f'] = "\\f",
      ['\n'] = "\\n", ['\r'] = "\\r",  ['\t'] = "\\t"};
  if (c < sizeof(named) / sizeof(named[0]) && named[c])
    put(o, named[c], 2);
  else
    put_u_escape(o, c);
}

static void put_string(struct out *o, const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0, i = 0; /* s[run..i) is copied as it is */
  put(o, "\"", 1);
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0x80) {
      if (!(len = utf8_decode(s + i, n - i, &cp))) {
        o->failed = true;
        return;
      }
      if (!(o->flags & JSON_TEXT_ASCII)) {
        i += len;
        continue;
      }
    }
    put(o, str + run, i - run);
    if (c >= 0x80)
      put_u_escape(o, cp);
    else
      put_escape(o, c);
    i += len;
    run = i;
  }
  put(o, str + run, i - run);
  put(o, "\"", 1);
}

static void put_integer(struct out *o, json_int_t v)
{
  char digits[24], *p = digits + sizeof(digits);
  /* The magnitude as unsigned, so the most negative value works too. */
  unsigned long long m = v < 0 ? 0ull - (unsigned long long)v
                               : (unsigned long long)v;
  do {
    *--p = (char)('0' + m % 10);
    m /= 10;
  } while (m);
  if (v < 0)
    *--p = '-';
  put(o, p, (size_t)(digits + sizeof(digits) - p));
}

/* jansson's jsonp_dtostr at its default precision: %.17g, ".0" when that
 * reads as an integer, the exponent without '+' or leading zeros. */
static void put_real(struct out *o, double v)
{
  char b[48];
  int n = snprintf(b, sizeof(b) - 3, "%.17g", v);
  if (n < 0 || (size_t)n >= sizeof(b) - 3) {
    o->failed = true;
    return;
  }
  size_t len = (size_t)n;
  if (!strchr(b, '.') && !strchr(b, 'e')) {
    memcpy(b + len, ".0", 3);
    len += 2;
  }
  char *start = strchr(b, 'e');
  if (start) {
    start++;
    char *end = start + 1;
    if (*start == '-')
      start++;
    while (*end == '0')
      end++;
    if (end != start) {
      memmove(start, end, len - (size_t)(end - b) + 1);
      len -= (size_t)(end - start);
    }
  }
  put(o, b, len);
}

static void put_value(struct out *o, const json_t *v, int depth);

static void put_object(struct out *o, const json_t *v, int depth)
{
  json_t *obj = (json_t *)v; /* the iterator API is not const */
  bool first = true;
  put(o, "{", 1);
  for (void *it = json_object_iter(obj); it && !o->failed;
       it = json_object_iter_next(obj, it), first = false) {
    if (!first)
      put(o, ",", 1);
    put_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
    put(o, ":", 1);
    put_value(o, json_object_iter_value(it), depth + 1);
  }
  put(o, "}", 1);
}

static void put_array(struct out *o, const json_t *v, int depth)
{
  put(o, "[", 1);
  for (size_t i = 0; i < json_array_size(v) && !o->failed; i++) {
    if (i)
      put(o, ",", 1);
    put_value(o, json_array_get(v, i), depth + 1);
  }
  put(o, "]", 1);
}

static void put_value(struct out *o, const json_t *v, int depth)
{
  if (!v || depth > JSON_TEXT_MAX_DEPTH) {
    o->failed = true;
    return;
  }
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    put_object(o, v, depth);
    break;
  case JSON_ARRAY:
    put_array(o, v, depth);
    break;
  case JSON_STRING:
    put_string(o, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    put_integer(o, json_integer_value(v));
    break;
  case JSON_REAL:
    put_real(o, json_real_value(v));
    break;
  case JSON_TRUE:
    put(o, "true", 4);
    break;
  case JSON_FALSE:
    put(o, "false", 5);
    break;
  case JSON_NULL:
    put(o, "null", 4);
    break;
  default:
    o->failed = true;
  }
}

char *json_text(const json_t *v, int flags)
{
  struct out o = {.grows = true, .flags = flags};
  put_value(&o, v, 0);
  if (!o.failed && (o.len + 1 <= o.cap || make_room(&o, 1))) {
    o.buf[o.len] = '\0';
    return o.buf;
  }
  free(o.buf);
  return NULL;
}

size_t json_text_into(const json_t *v, int flags, char *buf, size_t cap)
{
  struct out o = {.buf = buf, .cap = cap, .flags = flags};
  put_value(&o, v, 0);
  return o.failed ? 0 : o.len;
}
