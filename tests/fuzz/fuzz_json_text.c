/* libFuzzer target over core/util/json_text.c, differential against
 * jansson:
 *  - json_text_parse accepts exactly what json_loadb accepts, under each
 *    flag combination, and gives an equal value in the same key order;
 *    text with a NUL byte it refuses (json_loadb accepts some: a NUL
 *    right after a number or a word is lost when its lexer puts it
 *    back; json_loads, what the hot paths used, never sees one);
 *  - json_text writes what json_dumps writes for every accepted value
 *    (plain and ASCII-only), and that text parses back to the value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/json_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok)
{
  if (!ok)
    abort();
}

static void same_text(const json_t *v, int ours_flags, size_t theirs_flags)
{
  char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | theirs_flags);
  char *ours = json_text(v, ours_flags);
  require(theirs && ours && strcmp(theirs, ours) == 0);
  json_t *back = json_text_parse(ours, strlen(ours), JSON_TEXT_ANY);
  require(back && json_equal(back, v));
  json_decref(back);
  free(theirs);
  free(ours);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text = (const char *)data;
  for (int flags = 0; flags <= (JSON_TEXT_ANY | JSON_TEXT_UNIQUE_KEYS);
       flags += 2) {
    size_t theirs_flags =
        ((flags & JSON_TEXT_ANY) ? JSON_DECODE_ANY : 0) |
        ((flags & JSON_TEXT_UNIQUE_KEYS) ? JSON_REJECT_DUPLICATES : 0);
    json_t *ours = json_text_parse(text, size, flags);
    if (memchr(text, '\0', size)) {
      require(!ours);
      continue;
    }
    json_t *theirs = json_loadb(text, size, theirs_flags, NULL);
    require(!theirs == !ours);
    if (theirs) {
      require(json_equal(theirs, ours));
      same_text(ours, 0, 0);
      same_text(ours, JSON_TEXT_ASCII, JSON_ENSURE_ASCII);
    }
    json_decref(theirs);
    json_decref(ours);
  }
  return 0;
}
