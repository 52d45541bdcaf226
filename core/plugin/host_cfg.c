/* The cfg_* accessors of the host table.  A `struct provd_cfg` is a
 * jansson node on the host side (cfg_from_json); plugins only ever see it
 * through these functions, so the JSON library is not part of the ABI.
 *
 * Return codes as host.h documents: PROVD_OK, PROVD_NOT_FOUND when the key
 * is absent (a JSON null counts as absent: `tls: {cert: null}`), and
 * PROVD_E_INVAL when the value has another type or an argument is bad. */
#include "plugin/loader_int.h"

#include <stdio.h>

#include <jansson.h>

static const json_t *as_json(const struct provd_cfg *c)
{
  return (const json_t *)c;
}

/* Looks up key in an object node: OK with *v set, NOT_FOUND, or INVAL. */
static int member(const struct provd_cfg *c, const char *key,
                  const json_t **v)
{
  if (!c || !key || !json_is_object(as_json(c)))
    return PROVD_E_INVAL;
  *v = json_object_get(as_json(c), key);
  if (!*v || json_is_null(*v))
    return PROVD_NOT_FOUND;
  return PROVD_OK;
}

int host_cfg_str(const struct provd_cfg *c, const char *key,
                 const char **out)
{
  const json_t *v = NULL;
  int rc = out ? member(c, key, &v) : PROVD_E_INVAL;
  if (rc != PROVD_OK)
    return rc;
  if (!json_is_string(v))
    return PROVD_E_INVAL;
  *out = json_string_value(v);
  return PROVD_OK;
}

int host_cfg_int(const struct provd_cfg *c, const char *key, int64_t *out)
{
  const json_t *v = NULL;
  int rc = out ? member(c, key, &v) : PROVD_E_INVAL;
  if (rc != PROVD_OK)
    return rc;
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return PROVD_OK;
  }
  /* 3.0 from a JSON document is still an integer to a reader. */
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (d >= -9.2e18 && d <= 9.2e18 && (double)(int64_t)d == d) {
      *out = (int64_t)d;
      return PROVD_OK;
    }
  }
  return PROVD_E_INVAL;
}

int host_cfg_bool(const struct provd_cfg *c, const char *key, int *out)
{
  const json_t *v = NULL;
  int rc = out ? member(c, key, &v) : PROVD_E_INVAL;
  if (rc != PROVD_OK)
    return rc;
  if (!json_is_boolean(v))
    return PROVD_E_INVAL;
  *out = json_is_true(v);
  return PROVD_OK;
}

int host_cfg_double(const struct provd_cfg *c, const char *key, double *out)
{
  const json_t *v = NULL;
  int rc = out ? member(c, key, &v) : PROVD_E_INVAL;
  if (rc != PROVD_OK)
    return rc;
  if (!json_is_number(v))
    return PROVD_E_INVAL;
  *out = json_number_value(v);
  return PROVD_OK;
}

int host_cfg_child(const struct provd_cfg *c, const char *key,
                   const struct provd_cfg **out)
{
  const json_t *v = NULL;
  int rc = out ? member(c, key, &v) : PROVD_E_INVAL;
  if (rc != PROVD_OK)
    return rc;
  *out = (const struct provd_cfg *)v;
  return PROVD_OK;
}

size_t host_cfg_count(const struct provd_cfg *c)
{
  return c && json_is_array(as_json(c)) ? json_array_size(as_json(c)) : 0;
}

int host_cfg_at(const struct provd_cfg *c, size_t i,
                const struct provd_cfg **out)
{
  if (!c || !out || !json_is_array(as_json(c)))
    return PROVD_E_INVAL;
  const json_t *v = json_array_get(as_json(c), i);
  if (!v)
    return PROVD_NOT_FOUND;
  *out = (const struct provd_cfg *)v;
  return PROVD_OK;
}

/* Numbers have no text inside jansson; they are printed into a small
 * per-thread ring, so a pointer stays good for the rest of the op even if
 * the plugin reads a few more. */
#define TEXT_RING 8
#define TEXT_LEN 32

const char *host_cfg_text(const struct provd_cfg *c)
{
  static _Thread_local char ring[TEXT_RING][TEXT_LEN];
  static _Thread_local unsigned next;
  const json_t *v = as_json(c);
  if (!v)
    return NULL;
  if (json_is_string(v))
    return json_string_value(v);
  if (json_is_boolean(v))
    return json_is_true(v) ? "true" : "false";
  if (!json_is_number(v))
    return NULL;
  char *buf = ring[next++ % TEXT_RING];
  if (json_is_integer(v))
    snprintf(buf, TEXT_LEN, "%lld", (long long)json_integer_value(v));
  else
    snprintf(buf, TEXT_LEN, "%.17g", json_real_value(v));
  return buf;
}
