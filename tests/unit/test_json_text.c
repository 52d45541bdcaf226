/* json_text against jansson's json_dumps: the same bytes for generated
 * values of every kind, the same refusals. */
#include <check.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_text.h"

static uint64_t rng_state;

static uint64_t next_random(void)
{
  /* xorshift64*: deterministic per seed, so a failure can be replayed */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static size_t below(size_t n)
{
  return (size_t)(next_random() % n);
}

/* Random text: plain ASCII, characters JSON escapes, '/', 2-, 3- and
 * 4-byte UTF-8, and NUL. */
static size_t random_text(char *out, size_t cap)
{
  static const char *const pieces[] = {
      "a", "Z", "0", " ", "/", "\"", "\\", "\b", "\f", "\n", "\r", "\t",
      "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xdf\xbf", "\xe2\x82\xac",
      "\xef\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x9f\x98\x80",
      "\xf4\x8f\xbf\xbf", "CN=device-000123", "2026-12-04T13:00:00Z"};
  size_t n = 0, parts = below(12);
  for (size_t i = 0; i < parts; i++) {
    if (below(20) == 0 && n + 1 < cap) {
      out[n++] = '\0';
      continue;
    }
    const char *p = pieces[below(sizeof(pieces) / sizeof(pieces[0]))];
    size_t len = strlen(p);
    if (n + len >= cap)
      break;
    memcpy(out + n, p, len);
    n += len;
  }
  return n;
}

static double random_real(void)
{
  static const double fixed[] = {0.0,   -0.0,   0.1,     1.0,     -2.5,
                                 1e20,  1e21,   1e-5,    1e-7,    1e300,
                                 5e-324, DBL_MAX, -DBL_MIN, 123456789.0,
                                 1e16,  1e17,   3.141592653589793};
  if (below(3) == 0)
    return fixed[below(sizeof(fixed) / sizeof(fixed[0]))];
  for (;;) {
    uint64_t bits = next_random();
    double d;
    memcpy(&d, &bits, sizeof(d));
    if (d == d && d - d == 0) /* not NaN, not infinite */
      return d;
  }
}

static json_int_t random_integer(void)
{
  static const json_int_t fixed[] = {0, -1, 1, 9, 10, -10, INT64_MAX,
                                     INT64_MIN, INT64_MIN + 1};
  if (below(3) == 0)
    return fixed[below(sizeof(fixed) / sizeof(fixed[0]))];
  return (json_int_t)(next_random() >> below(64));
}

static json_t *random_value(int depth)
{
  char text[128];
  size_t kind = below(depth > 4 ? 7 : 9);
  switch (kind) {
  case 0:
    return json_true();
  case 1:
    return json_false();
  case 2:
    return json_null();
  case 3:
    return json_integer(random_integer());
  case 4:
    return json_real(random_real());
  case 5:
  case 6: {
    size_t n = random_text(text, sizeof(text));
    return json_stringn(text, n);
  }
  case 7: {
    json_t *a = json_array();
    for (size_t i = below(5); i > 0; i--)
      json_array_append_new(a, random_value(depth + 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    for (size_t i = below(6); i > 0; i--) {
      size_t n = random_text(text, sizeof(text));
      json_object_setn_new(o, text, n, random_value(depth + 1));
    }
    return o;
  }
  }
}

static void same_as_jansson(const json_t *v, uint64_t seed)
{
  static const struct {
    int ours;
    size_t theirs;
  } modes[] = {{0, JSON_COMPACT | JSON_ENCODE_ANY},
               {JSON_TEXT_ASCII,
                JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII}};
  for (size_t m = 0; m < 2; m++) {
    char *expected = json_dumps(v, modes[m].theirs);
    char *got = json_text(v, modes[m].ours);
    ck_assert_msg(expected != NULL, "seed %llu: jansson refused",
                  (unsigned long long)seed);
    ck_assert_msg(got && strcmp(got, expected) == 0,
                  "seed %llu mode %zu:\n jansson %s\n ours    %s",
                  (unsigned long long)seed, m, expected,
                  got ? got : "(null)");
    /* Into a buffer: the whole length whatever fits, the text when it
     * all fits. */
    size_t len = strlen(expected);
    char buf[4096];
    ck_assert_uint_eq(json_text_into(v, modes[m].ours, buf, 0), len);
    ck_assert_uint_eq(json_text_into(v, modes[m].ours, buf, len / 2), len);
    if (len <= sizeof(buf)) {
      ck_assert_uint_eq(json_text_into(v, modes[m].ours, buf, sizeof(buf)),
                        len);
      ck_assert(memcmp(buf, expected, len) == 0);
    }
    free(expected);
    free(got);
  }
}

START_TEST(t_generated_values_match_jansson)
{
  for (uint64_t seed = 1; seed <= 20000; seed++) {
    rng_state = seed * 0x9E3779B97F4A7C15ull;
    json_t *v = random_value(0);
    same_as_jansson(v, seed);
    json_decref(v);
  }
}
END_TEST

START_TEST(t_registration_answer_matches_jansson)
{
  json_t *v = json_loads(
      "{\"operationId\":\"5.1a2b.0c1d\",\"status\":\"assigned\","
      "\"registrationState\":{\"x509\":{\"certificateInfo\":{\"subjectName\":"
      "\"CN=d\\u00e9vice\",\"version\":3}},\"etag\":\"\\\"a1b2\\\"\","
      "\"payload\":{\"ratio\":0.25,\"n\":-7,\"list\":[true,false,null]}}}",
      0, NULL);
  ck_assert_ptr_nonnull(v);
  same_as_jansson(v, 0);
  json_decref(v);
}
END_TEST

START_TEST(t_refusals)
{
  /* Not UTF-8 (only the _nocheck constructors let it in): both refuse,
   * as a value and as a key. */
  static const char *const bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                    "\xe2\x82", "\x80", "\xff"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *s = json_string_nocheck(bad[i]);
    ck_assert_ptr_null(json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY));
    ck_assert_ptr_null(json_text(s, 0));
    ck_assert_uint_eq(json_text_into(s, 0, NULL, 0), 0);
    json_t *o = json_object();
    json_object_set_new_nocheck(o, bad[i], json_true());
    ck_assert_ptr_null(json_text(o, 0));
    json_decref(o);
    json_decref(s);
  }
  ck_assert_ptr_null(json_text(NULL, 0));
  /* Nesting: JSON_TEXT_MAX_DEPTH levels below the top are fine, one more
   * is refused. */
  json_t *top = json_array(), *inner = top;
  for (int i = 0; i < JSON_TEXT_MAX_DEPTH; i++) {
    json_t *next = json_array();
    json_array_append_new(inner, next);
    inner = next;
  }
  char *text = json_text(top, 0);
  ck_assert_ptr_nonnull(text);
  ck_assert_uint_eq(strlen(text), 2 * (JSON_TEXT_MAX_DEPTH + 1));
  free(text);
  json_array_append_new(inner, json_array());
  ck_assert_ptr_null(json_text(top, 0));
  json_decref(top);
}
END_TEST

/* json_text_parse against json_loadb: both refuse, or both give the
 * same value with the same key order and number kinds. */
static void parses_as_jansson(const char *text, size_t len, int flags,
                              const char *what)
{
  size_t theirs_flags = ((flags & JSON_TEXT_ANY) ? JSON_DECODE_ANY : 0) |
                        ((flags & JSON_TEXT_UNIQUE_KEYS)
                             ? JSON_REJECT_DUPLICATES
                             : 0);
  json_t *ours = json_text_parse(text, len, flags);
  if (memchr(text, '\0', len)) {
    /* Refused (json_loadb loses a NUL right after a number or a word,
     * and accepts "1\0"; json_loads never sees one). */
    ck_assert_msg(!ours, "%s: accepts a NUL byte", what);
    return;
  }
  json_t *theirs = json_loadb(text, len, theirs_flags, NULL);
  ck_assert_msg(!theirs == !ours, "%s: jansson %s, ours %s: %.*s", what,
                theirs ? "accepts" : "refuses", ours ? "accepts" : "refuses",
                (int)len, text);
  if (theirs) {
    char *a = json_dumps(theirs, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(ours, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_msg(json_equal(theirs, ours) && strcmp(a, b) == 0,
                  "%s: %.*s\n jansson %s\n ours    %s", what, (int)len, text,
                  a, b);
    free(a);
    free(b);
  }
  json_decref(theirs);
  json_decref(ours);
}

/* Every flag combination, on the text as it is. */
static void parses_as_jansson_all_flags(const char *text, size_t len,
                                        const char *what)
{
  for (int flags = 0; flags <= (JSON_TEXT_ANY | JSON_TEXT_UNIQUE_KEYS);
       flags += 2)
    parses_as_jansson(text, len, flags, what);
}

START_TEST(t_parse_generated_and_mutated_texts)
{
  static const char inserts[] = " \t\n\"\\/{}[]:,0123456789.eE+-uatfnlx\x01\x80\xc3\xed\xf4";
  char what[64];
  for (uint64_t seed = 1; seed <= 20000; seed++) {
    rng_state = seed * 0x9E3779B97F4A7C15ull;
    json_t *v = random_value(0);
    /* jansson's own text, compact or indented, then damaged a little */
    char *text = json_dumps(v, JSON_ENCODE_ANY |
                                   (below(2) ? JSON_COMPACT : JSON_INDENT(1)) |
                                   (below(2) ? JSON_ENSURE_ASCII : 0));
    size_t len = strlen(text);
    snprintf(what, sizeof(what), "seed %llu", (unsigned long long)seed);
    parses_as_jansson_all_flags(text, len, what);
    for (int damage = 0; damage < 3 && len > 0; damage++) {
      size_t at = below(len);
      switch (below(4)) {
      case 0: /* cut short */
        len = at;
        break;
      case 1: /* one byte changed */
        text[at] = inserts[below(sizeof(inserts) - 1)];
        break;
      case 2: /* one byte dropped */
        memmove(text + at, text + at + 1, len - at);
        len--;
        break;
      default: /* a byte flipped */
        text[at] ^= (char)(1u << below(8));
      }
      snprintf(what, sizeof(what), "seed %llu damage %d",
               (unsigned long long)seed, damage);
      parses_as_jansson_all_flags(text, len, what);
    }
    free(text);
    json_decref(v);
  }
}
END_TEST

START_TEST(t_parse_edges_as_jansson)
{
  static const char *const texts[] = {
      "", " ", "{}", "[]", " { } ", "{\"a\":1,}", "[1,]", "[,1]", "{,}",
      "{\"a\" 1}", "{\"a\":}", "{1:2}", "{\"a\":1 \"b\":2}",
      "{\"a\":1,\"a\":2}", "{\"a\":{\"a\":1},\"b\":[{\"a\":1,\"a\":3}]}",
      "1", "-1", "-", "-0", "01", "-01", "0.", ".5", "1.", "1.5", "1e5",
      "1E+5", "1e-5", "1e", "1e+", "2.5e-400", "1e400", "-1e400",
      "9223372036854775807", "9223372036854775808", "-9223372036854775808",
      "-9223372036854775809", "123456789012345678901234567890",
      "0.00000000000000000000000000000000000000000000000000000000000000001",
      "true", "false", "null", "nul", "nullx", "True", "[true,false,null]",
      "[truefalse]", "\"\"", "\"a\"", "\"\\u0000\"", "\"\\u00e9\"",
      "\"\\u00E9\"", "\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ude00\"",
      "\"\\ud83d\\u0041\"", "\"\\ud83dx\"", "\"\\u12\"", "\"\\u12g4\"",
      "\"\\x\"", "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"", "\"a\tb\"", "\"a\nb\"",
      "\"\x7f\"", "\"\xc3\xa9\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
      "\"\xf4\x90\x80\x80\"", "\"\xef\xbb\xbf\"", "\xef\xbb\xbf{}", "{\"\\u0000\":1}",
      "{\"k\\u00e9\":1}", "[1]x", "[1] [2]", "{\"a\":1}}", "[\"a\"", "[1,2",
      "\"unterminated", "[\"a\\\"]", "\x01", "[1\x00]", "null\x00]",
      "{\"a\":1}\x00"};
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    size_t len = strlen(texts[i]);
    if (i + 3 >= sizeof(texts) / sizeof(texts[0]))
      len += 1 + strlen(texts[i] + len + 1); /* the last three hold a NUL */
    parses_as_jansson_all_flags(texts[i], len, "edge");
  }
  /* Depth: the top value is level 1; JSON_TEXT_MAX_DEPTH levels parse,
   * one more does not (a scalar counts as a level too). */
  for (int levels = JSON_TEXT_MAX_DEPTH - 1; levels <= JSON_TEXT_MAX_DEPTH + 1;
       levels++) {
    char *deep = malloc(2 * (size_t)levels + 2);
    memset(deep, '[', (size_t)levels);
    memset(deep + levels, ']', (size_t)levels);
    parses_as_jansson(deep, 2 * (size_t)levels, 0, "nested arrays");
    memset(deep, '[', (size_t)levels - 1);
    deep[levels - 1] = '1';
    memset(deep + levels, ']', (size_t)levels - 1);
    parses_as_jansson(deep, 2 * (size_t)levels - 1, 0, "a scalar nested");
    free(deep);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("json_text");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_generated_values_match_jansson);
  tcase_add_test(tc, t_registration_answer_matches_jansson);
  tcase_add_test(tc, t_refusals);
  tcase_add_test(tc, t_parse_generated_and_mutated_texts);
  tcase_add_test(tc, t_parse_edges_as_jansson);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
