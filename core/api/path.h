/* The one path splitter of the HTTPS APIs. */
#ifndef CORE_API_PATH_H
#define CORE_API_PATH_H

#include <stddef.h>

#define PATH_SEGMENTS_MAX 6
#define PATH_SEGMENT_MAX 512 /* raw (still percent-encoded), with the NUL */

enum path_split_status {
  PATH_OK = 0,
  PATH_NOT_ABSOLUTE = -1,    /* does not start with '/' */
  PATH_TOO_MANY_SEGMENTS = -2,
  PATH_SEGMENT_TOO_LONG = -3
};

/* Segments are kept raw: each API decodes the ones it uses, so a "%2F"
 * inside an id never splits it. */
struct path_parts {
  size_t n;
  char seg[PATH_SEGMENTS_MAX][PATH_SEGMENT_MAX];
};

/* Splits "/a/b/c" into a, b, c.  Empty segments are kept ("/a//b" has
 * three, "/a/" has two, the last empty): whether they are allowed is the
 * caller's rule.  On failure parts holds the segments before the one that
 * failed. */
enum path_split_status path_split(const char *path, struct path_parts *parts);

#endif
