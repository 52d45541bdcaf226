/* JSON text to and from jansson values on the hot paths: records read
 * and written, events, registration answers, attestation state.
 *
 * Why not json_dumps and json_loads: jansson writes through a callback
 * per run of plain characters, and reads through a stream that checks
 * and copies one character at a time; a 1 KiB registration answer took
 * 9 us to write and 18 to read, these take about 2.5 and 8.
 *
 * json_text writes byte for byte what json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) writes (JSON_ENSURE_ASCII too with JSON_TEXT_ASCII)
 * and fails where it fails (a string that is not UTF-8, which only the
 * *_nocheck constructors let in) and on nesting deeper than
 * JSON_TEXT_MAX_DEPTH.  json_text_parse accepts exactly what
 * json_loadb(text, len, flags) accepts, with the same values and key
 * order, except that it refuses every text with a NUL byte (json_loadb
 * accepts "1\0", its lexer losing the NUL it put back).  unit_test_json_text and the fuzz target json_text check both
 * against jansson.  Request bodies from the network keep jansson's
 * parser (api/json_body.c), whose error messages the wire answers
 * quote. */
#ifndef CORE_UTIL_JSON_TEXT_H
#define CORE_UTIL_JSON_TEXT_H

#include <stddef.h>

#include <jansson.h>

#define JSON_TEXT_MAX_DEPTH 2048 /* as deep as jansson parses */

enum json_text_flags {
  JSON_TEXT_ASCII = 1, /* write: every non-ASCII code point as \uXXXX */
  JSON_TEXT_ANY = 2,   /* parse: any value at the top (JSON_DECODE_ANY) */
  JSON_TEXT_UNIQUE_KEYS = 4, /* parse: JSON_REJECT_DUPLICATES */
};

/* The text, NUL-terminated (caller frees), or NULL (see above, or out
 * of memory). */
char *json_text(const json_t *v, int flags);

/* Like json_dumpb: writes at most cap bytes of the text into buf (no
 * NUL) and returns its whole length, which may exceed cap; 0 on
 * failure. */
size_t json_text_into(const json_t *v, int flags, char *buf, size_t cap);

/* The value the len bytes of text spell (caller owns the reference), or
 * NULL when json_loadb would refuse them.  Without JSON_TEXT_ANY the top
 * must be an object or an array. */
json_t *json_text_parse(const char *text, size_t len, int flags);

#endif
