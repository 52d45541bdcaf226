#include "api/path.h"

#include <string.h>

enum path_split_status path_split(const char *path, struct path_parts *parts)
{
  parts->n = 0;
  if (!path || path[0] != '/')
    return PATH_NOT_ABSOLUTE;
  const char *s = path + 1;
  for (;;) {
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    if (parts->n == PATH_SEGMENTS_MAX)
      return PATH_TOO_MANY_SEGMENTS;
    if (len >= PATH_SEGMENT_MAX)
      return PATH_SEGMENT_TOO_LONG;
    memcpy(parts->seg[parts->n], s, len);
    parts->seg[parts->n][len] = '\0';
    parts->n++;
    if (!slash)
      return PATH_OK;
    s = slash + 1;
  }
}
