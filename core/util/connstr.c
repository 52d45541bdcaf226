#include "util/connstr.h"

#include <string.h>
#include <strings.h>

#define CONNSTR_PARTS_MAX 32
#define CONNSTR_CODE "BAD_CONNECTION_STRING"

struct span {
  const char *p;
  size_t len;
};

static int is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct span trimmed(const char *p, size_t len)
{
  while (len > 0 && is_blank(*p)) {
    p++;
    len--;
  }
  while (len > 0 && is_blank(p[len - 1]))
    len--;
  return (struct span){p, len};
}

struct field {
  const char *name;
  char *dst;
  size_t cap;
  int seen;
};

static int store_value(struct field *f, struct span v, struct provd_err *err)
{
  if (f->seen) {
    perr_set(err, CONNSTR_CODE, "%s is given twice", f->name);
    return -1;
  }
  if (v.len == 0 || v.len >= f->cap) {
    perr_set(err, CONNSTR_CODE, "%s is %s", f->name,
             v.len ? "too long" : "empty");
    return -1;
  }
  memcpy(f->dst, v.p, v.len);
  f->dst[v.len] = '\0';
  f->seen = 1;
  return 0;
}

static int take_part(struct field *fields, size_t n_fields, struct span part,
                     struct provd_err *err)
{
  const char *eq = memchr(part.p, '=', part.len);
  if (!eq) {
    perr_set(err, CONNSTR_CODE, "a part has no '=' (want Name=value)");
    return -1;
  }
  struct span name = trimmed(part.p, (size_t)(eq - part.p));
  struct span value =
      trimmed(eq + 1, (size_t)(part.p + part.len - (eq + 1)));
  for (size_t i = 0; i < n_fields; i++)
    if (strlen(fields[i].name) == name.len &&
        strncasecmp(fields[i].name, name.p, name.len) == 0)
      return store_value(&fields[i], value, err);
  return 0; /* unknown names are ignored, as the SDKs do */
}

int connstr_parse(const char *text, struct connstr *out,
                  struct provd_err *err)
{
  memset(out, 0, sizeof(*out));
  struct field fields[] = {
      {"HostName", out->host, sizeof(out->host), 0},
      {"SharedAccessKeyName", out->key_name, sizeof(out->key_name), 0},
      {"SharedAccessKey", out->key, sizeof(out->key), 0},
  };
  const size_t n_fields = sizeof(fields) / sizeof(fields[0]);
  const char *p = text ? text : "";
  for (int parts = 0; *p; parts++) {
    if (parts == CONNSTR_PARTS_MAX) {
      perr_set(err, CONNSTR_CODE, "more than %d parts", CONNSTR_PARTS_MAX);
      return -1;
    }
    const char *semi = strchr(p, ';');
    struct span part = trimmed(p, semi ? (size_t)(semi - p) : strlen(p));
    if (part.len > 0 && take_part(fields, n_fields, part, err) != 0) {
      memset(out, 0, sizeof(*out));
      return -1;
    }
    p = semi ? semi + 1 : p + strlen(p);
  }
  for (size_t i = 0; i < n_fields; i++)
    if (!fields[i].seen) {
      memset(out, 0, sizeof(*out));
      perr_set(err, CONNSTR_CODE, "missing %s (want HostName=..;"
               "SharedAccessKeyName=..;SharedAccessKey=..)", fields[i].name);
      return -1;
    }
  return 0;
}
