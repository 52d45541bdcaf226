/* Compact JSON text of a jansson value, the one serializer of the hot
 * paths (records, events, registration answers).
 *
 * Why not json_dumps: jansson writes through a callback per run of
 * plain characters and checks each code point on its own; a 1 KiB
 * registration answer took 9 us, this takes about 2.5.  The text is byte
 * for byte what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes
 * (JSON_ENSURE_ASCII too with JSON_TEXT_ASCII), which unit_test_json_text
 * checks against jansson on generated values; it fails where jansson
 * fails (a string that is not UTF-8, which only the *_nocheck
 * constructors let in) and on nesting deeper than JSON_TEXT_MAX_DEPTH. */
#ifndef CORE_UTIL_JSON_TEXT_H
#define CORE_UTIL_JSON_TEXT_H

#include <stddef.h>

#include <jansson.h>

#define JSON_TEXT_MAX_DEPTH 2048 /* as deep as jansson parses */

enum json_text_flags {
  JSON_TEXT_ASCII = 1, /* escape every non-ASCII code point as \uXXXX */
};

/* The text, NUL-terminated (caller frees), or NULL (see above, or out
 * of memory). */
char *json_text(const json_t *v, int flags);

/* Like json_dumpb: writes at most cap bytes of the text into buf (no
 * NUL) and returns its whole length, which may exceed cap; 0 on
 * failure. */
size_t json_text_into(const json_t *v, int flags, char *buf, size_t cap);

#endif
