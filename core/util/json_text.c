#include "util/json_text.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/num.h"

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

/* ---- reading ---------------------------------------------------------- */

struct in {
  const unsigned char *p, *end;
  int flags;
  int depth; /* of the value being parsed; the top is 1, as in jansson */
};

static void skip_space(struct in *in)
{
  while (in->p < in->end &&
         (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
    in->p++;
}

static bool next_is(struct in *in, unsigned char c)
{
  return in->p < in->end && *in->p == c;
}

/* The four hex digits after "\u" at p (p points at the 'u'), or -1. */
static int32_t unicode_escape(const struct in *in, const unsigned char *p)
{
  if (in->end - p < 5)
    return -1;
  int32_t v = 0;
  for (int i = 1; i <= 4; i++) {
    int h = num_hex_digit(p[i]);
    if (h < 0)
      return -1;
    v = (v << 4) | h;
  }
  return v;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* One escape at in->p (just past the backslash) decoded into out;
 * returns the bytes written, 0 when jansson refuses it (\u0000 too:
 * jansson refuses NUL in strings and keys alike). */
static size_t decode_escape(struct in *in, char *out)
{
  static const char simple[][2] = {{'"', '"'}, {'\\', '\\'}, {'/', '/'},
                                   {'b', '\b'}, {'f', '\f'}, {'n', '\n'},
                                   {'r', '\r'}, {'t', '\t'}};
  if (in->p >= in->end)
    return 0;
  for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
    if (*in->p == (unsigned char)simple[i][0]) {
      in->p++;
      *out = simple[i][1];
      return 1;
    }
  int32_t cp = *in->p == 'u' ? unicode_escape(in, in->p) : -1;
  if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
    return 0;
  in->p += 5;
  if (cp >= 0xD800 && cp <= 0xDBFF) { /* a pair's first half */
    if (in->end - in->p < 2 || in->p[0] != '\\' || in->p[1] != 'u')
      return 0;
    int32_t low = unicode_escape(in, in->p + 1);
    if (low < 0xDC00 || low > 0xDFFF)
      return 0;
    in->p += 6;
    cp = ((cp - 0xD800) << 10) + (low - 0xDC00) + 0x10000;
  }
  return utf8_encode((uint32_t)cp, out);
}

/* Bytes from start (just past a string's opening quote) to its closing
 * quote, or to the end of the text: what its decoded form can need. */
static size_t encoded_length(const struct in *in, const unsigned char *start)
{
  const unsigned char *p = start;
  while (p < in->end && *p != '"')
    p += *p == '\\' && p + 1 < in->end ? 2 : 1;
  return (size_t)(p - start);
}

/* The string whose opening quote was just passed: *out points into the
 * text when it has no escapes, else into *scratch (caller frees).
 * Returns 0, or -1 when jansson refuses it. */
static int read_string(struct in *in, const char **out, size_t *len,
                       char **scratch)
{
  const unsigned char *start = in->p;
  char *buf = NULL;
  size_t n = 0; /* bytes in buf */
  *scratch = NULL;
  for (;;) {
    const unsigned char *run = in->p;
    while (in->p < in->end && *in->p >= 0x20 && *in->p != '"' &&
           *in->p != '\\') {
      uint32_t cp;
      size_t step =
          *in->p < 0x80 ? 1 : utf8_decode(in->p, (size_t)(in->end - in->p), &cp);
      if (!step)
        goto refused;
      in->p += step;
    }
    if (buf) {
      memcpy(buf + n, run, (size_t)(in->p - run));
      n += (size_t)(in->p - run);
    }
    if (in->p >= in->end || *in->p < 0x20)
      goto refused; /* unterminated, or a raw control character */
    if (*in->p == '"') {
      in->p++;
      *out = buf ? buf : (const char *)start;
      *len = buf ? n : (size_t)(in->p - 1 - start);
      *scratch = buf;
      return 0;
    }
    if (!buf) { /* the first escape: decoded text is never longer */
      if (!(buf = malloc(encoded_length(in, start) + 1)))
        return -1;
      n = (size_t)(in->p - start);
      memcpy(buf, start, n);
    }
    in->p++; /* the backslash */
    size_t w = decode_escape(in, buf + n);
    if (!w)
      goto refused;
    n += w;
  }
refused:
  free(buf);
  return -1;
}

static bool next_is_digit(const struct in *in)
{
  return in->p < in->end && *in->p >= '0' && *in->p <= '9';
}

/* Passes one or more digits; false when there is none. */
static bool skip_digits(struct in *in)
{
  if (!next_is_digit(in))
    return false;
  while (next_is_digit(in))
    in->p++;
  return true;
}

static json_t *read_number(struct in *in)
{
  const unsigned char *start = in->p;
  bool real = false;
  if (next_is(in, '-'))
    in->p++;
  if (next_is(in, '0')) {
    in->p++;
    if (next_is_digit(in))
      return NULL; /* a leading zero */
  } else if (!skip_digits(in)) {
    return NULL;
  }
  if (next_is(in, '.')) {
    in->p++;
    if (!skip_digits(in))
      return NULL;
    real = true;
  }
  if (next_is(in, 'e') || next_is(in, 'E')) {
    in->p++;
    if (next_is(in, '+') || next_is(in, '-'))
      in->p++;
    if (!skip_digits(in))
      return NULL;
    real = true;
  }
  /* strtoll and strtod want a terminated copy; the text need not be. */
  size_t len = (size_t)(in->p - start);
  char small[64], *copy = len < sizeof(small) ? small : malloc(len + 1);
  if (!copy)
    return NULL;
  memcpy(copy, start, len);
  copy[len] = '\0';
  json_t *v = NULL;
  errno = 0;
  if (real) {
    double d = strtod(copy, NULL);
    if (!((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE))
      v = json_real(d);
  } else {
    long long i = strtoll(copy, NULL, 10);
    if (errno != ERANGE)
      v = json_integer((json_int_t)i);
  }
  if (copy != small)
    free(copy);
  return v;
}

static bool is_alpha(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* true, false or null; jansson reads a whole run of letters as one
 * word, so "nullx" is refused, not null followed by junk. */
static json_t *read_word(struct in *in)
{
  static const struct {
    const char *word;
    json_type type;
  } words[] = {{"true", JSON_TRUE}, {"false", JSON_FALSE}, {"null", JSON_NULL}};
  const unsigned char *start = in->p;
  while (in->p < in->end && is_alpha(*in->p))
    in->p++;
  size_t len = (size_t)(in->p - start);
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (len == strlen(words[i].word) && memcmp(start, words[i].word, len) == 0)
      return words[i].type == JSON_TRUE    ? json_true()
             : words[i].type == JSON_FALSE ? json_false()
                                           : json_null();
  return NULL;
}

static json_t *read_value(struct in *in);

/* One array element read and appended to a. */
static int read_item(struct in *in, json_t *a)
{
  json_t *v = read_value(in);
  return v ? json_array_append_new(a, v) : -1;
}

/* One "key": value member of the object being read, added to o. */
static int read_member(struct in *in, json_t *o)
{
  const char *key;
  size_t key_len;
  char *scratch;
  if (!next_is(in, '"'))
    return -1;
  in->p++;
  if (read_string(in, &key, &key_len, &scratch))
    return -1;
  int rc = -1;
  skip_space(in);
  if (next_is(in, ':')) {
    in->p++;
    skip_space(in);
    json_t *v = read_value(in);
    if (v && (in->flags & JSON_TEXT_UNIQUE_KEYS) &&
        json_object_getn(o, key, key_len)) {
      json_decref(v);
      v = NULL;
    }
    rc = v ? json_object_setn_new_nocheck(o, key, key_len, v) : -1;
  }
  free(scratch);
  return rc;
}

/* The elements of the array or object c (taken) opening at in->p, each
 * added by read_element, separated by ',' and ended by `close`; NULL
 * when one fails or the text does not follow that shape. */
static json_t *read_container(struct in *in, json_t *c, unsigned char close,
                              int (*read_element)(struct in *, json_t *))
{
  if (!c)
    return NULL;
  in->p++; /* '[' or '{' */
  skip_space(in);
  if (next_is(in, close)) {
    in->p++;
    return c;
  }
  while (read_element(in, c) == 0) {
    skip_space(in);
    if (next_is(in, close)) {
      in->p++;
      return c;
    }
    if (!next_is(in, ','))
      break;
    in->p++;
    skip_space(in);
  }
  json_decref(c);
  return NULL;
}

static json_t *read_string_value(struct in *in)
{
  const char *s;
  size_t len;
  char *scratch;
  in->p++; /* '"' */
  if (read_string(in, &s, &len, &scratch))
    return NULL;
  json_t *v = json_stringn_nocheck(s, len);
  free(scratch);
  return v;
}

static json_t *read_value(struct in *in)
{
  if (in->p >= in->end || ++in->depth > JSON_TEXT_MAX_DEPTH)
    return NULL;
  json_t *v;
  unsigned char c = *in->p;
  if (c == '{')
    v = read_container(in, json_object(), '}', read_member);
  else if (c == '[')
    v = read_container(in, json_array(), ']', read_item);
  else if (c == '"')
    v = read_string_value(in);
  else if (c == '-' || (c >= '0' && c <= '9'))
    v = read_number(in);
  else if (is_alpha(c))
    v = read_word(in);
  else
    v = NULL;
  in->depth--;
  return v;
}

json_t *json_text_parse(const char *text, size_t len, int flags)
{
  if (!text)
    return NULL;
  struct in in = {(const unsigned char *)text,
                  (const unsigned char *)text + len, flags, 0};
  skip_space(&in);
  if (!(flags & JSON_TEXT_ANY) && !next_is(&in, '{') && !next_is(&in, '['))
    return NULL;
  json_t *v = read_value(&in);
  skip_space(&in);
  if (v && in.p != in.end) {
    json_decref(v);
    return NULL;
  }
  return v;
}
