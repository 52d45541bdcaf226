#include "util/num.h"

#include <errno.h>
#include <stdlib.h>

int num_parse_long(const char *text, long min, long max, long *out)
{
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}
