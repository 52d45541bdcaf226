/* Template rendering (template.h). */
#include <stdlib.h>
#include <string.h>

#include "template.h"

struct out {
  char *buf;
  size_t len, cap, max;
};

static int put(struct out *o, const char *s, size_t n)
{
  if (o->len + n + 1 > o->max)
    return -1;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *nb = realloc(o->buf, cap);
    if (!nb)
      return -1;
    o->buf = nb;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
  o->buf[o->len] = '\0';
  return 0;
}

/* Writes the value of the name between p and end, trimmed. */
static int put_value(struct out *o, const char *p, const char *end,
                     const json_t *values)
{
  while (p < end && *p == ' ')
    p++;
  while (end > p && end[-1] == ' ')
    end--;
  char name[128];
  size_t n = (size_t)(end - p);
  if (n >= sizeof(name))
    return 0; /* no such name */
  memcpy(name, p, n);
  name[n] = '\0';
  const char *v = json_string_value(json_object_get(values, name));
  return v ? put(o, v, strlen(v)) : 0;
}

char *template_render(const char *tmpl, const json_t *values, size_t max)
{
  struct out o = {.max = max};
  if (put(&o, "", 0) != 0)
    return NULL;
  const char *p = tmpl;
  while (*p) {
    const char *open = strstr(p, "{{");
    const char *close = open ? strstr(open + 2, "}}") : NULL;
    if (!open || !close) {
      if (put(&o, p, strlen(p)) != 0)
        goto fail;
      break;
    }
    if (put(&o, p, (size_t)(open - p)) != 0 ||
        put_value(&o, open + 2, close, values) != 0)
      goto fail;
    p = close + 2;
  }
  return o.buf;
fail:
  free(o.buf);
  return NULL;
}
