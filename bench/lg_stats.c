/* Counters and latency samples of one load-generator run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static const char *const kind_names[LG_ERR__COUNT] = {
  [LG_ERR_CONNECT] = "connect", [LG_ERR_TLS] = "tls",
  [LG_ERR_HTTP] = "http",       [LG_ERR_TIMEOUT] = "timeout",
  [LG_ERR_CLOSED] = "closed",   [LG_ERR_PROTOCOL] = "protocol",
  [LG_ERR_FAILED] = "failed",
};

const char *lg_err_kind_name(enum lg_err_kind kind)
{
  return kind < LG_ERR__COUNT ? kind_names[kind] : "?";
}

void lg_stats_init(struct lg_stats *s)
{
  memset(s, 0, sizeof *s);
}

void lg_stats_free(struct lg_stats *s)
{
  free(s->lat_us);
  s->lat_us = NULL;
  s->n_lat = s->cap_lat = 0;
}

static void keep_sample(struct lg_stats *s, int64_t latency_us)
{
  if (s->n_lat == s->cap_lat) {
    size_t cap = s->cap_lat ? s->cap_lat * 2 : 4096;
    uint32_t *grown;
    if (cap > LG_MAX_SAMPLES)
      cap = LG_MAX_SAMPLES;
    if (cap == s->n_lat) {
      s->lat_truncated = true;
      return;
    }
    grown = realloc(s->lat_us, cap * sizeof *grown);
    if (!grown) {
      s->lat_truncated = true;
      return;
    }
    s->lat_us = grown;
    s->cap_lat = cap;
  }
  if (latency_us < 0)
    latency_us = 0;
  if (latency_us > UINT32_MAX)
    latency_us = UINT32_MAX;
  s->lat_us[s->n_lat++] = (uint32_t)latency_us;
  s->lat_sorted = false;
}

void lg_stats_ok(struct lg_stats *s, int64_t latency_us)
{
  s->ok++;
  keep_sample(s, latency_us);
}

/* Keeps the first text of each (kind, HTTP status) so a failing run says
 * why without one line per request (bodies carry per-request ids). */
static void keep_error_text(struct lg_stats *s, enum lg_err_kind kind,
                            int status, const char *detail)
{
  char key[32];
  size_t key_len;
  if (kind == LG_ERR_HTTP)
    snprintf(key, sizeof key, "%s %d: ", kind_names[kind], status);
  else
    snprintf(key, sizeof key, "%s: ", kind_names[kind]);
  key_len = strlen(key);
  for (size_t i = 0; i < s->n_samples; i++)
    if (strncmp(s->samples[i], key, key_len) == 0)
      return;
  if (s->n_samples < LG_MAX_ERROR_SAMPLES)
    snprintf(s->samples[s->n_samples++], sizeof s->samples[0], "%s%s", key,
             detail ? detail : "");
}

void lg_stats_error(struct lg_stats *s, enum lg_err_kind kind, int status,
                    const char *detail)
{
  if (kind >= LG_ERR__COUNT)
    kind = LG_ERR_PROTOCOL;
  s->errors[kind]++;
  if (kind == LG_ERR_HTTP && status >= 0 && status < 600)
    s->http_status[status]++;
  keep_error_text(s, kind, status, detail);
}

void lg_stats_merge(struct lg_stats *dst, const struct lg_stats *src)
{
  dst->ok += src->ok;
  for (int k = 0; k < LG_ERR__COUNT; k++)
    dst->errors[k] += src->errors[k];
  for (int st = 0; st < 600; st++)
    dst->http_status[st] += src->http_status[st];
  dst->resumed += src->resumed;
  dst->handshakes += src->handshakes;
  dst->requests += src->requests;
  dst->cancelled += src->cancelled;
  dst->missed += src->missed;
  dst->refused_no_hint += src->refused_no_hint;
  dst->lat_truncated = dst->lat_truncated || src->lat_truncated;
  for (size_t i = 0; i < src->n_lat; i++)
    keep_sample(dst, src->lat_us[i]);
  for (size_t i = 0; i < src->n_samples; i++) {
    bool seen = false;
    for (size_t j = 0; j < dst->n_samples && !seen; j++)
      seen = strncmp(dst->samples[j], src->samples[i],
                     strcspn(src->samples[i], ":") + 1) == 0;
    if (!seen && dst->n_samples < LG_MAX_ERROR_SAMPLES)
      memcpy(dst->samples[dst->n_samples++], src->samples[i],
             sizeof src->samples[i]);
  }
}

uint64_t lg_stats_errors(const struct lg_stats *s)
{
  uint64_t n = 0;
  for (int k = 0; k < LG_ERR__COUNT; k++)
    n += s->errors[k];
  return n;
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

double lg_stats_quantile_ms(struct lg_stats *s, double q)
{
  size_t idx;
  if (s->n_lat == 0)
    return 0.0;
  if (!s->lat_sorted) {
    qsort(s->lat_us, s->n_lat, sizeof *s->lat_us, cmp_u32);
    s->lat_sorted = true;
  }
  if (q <= 0)
    return s->lat_us[0] / 1000.0;
  idx = (size_t)(q * (double)s->n_lat);
  if (idx >= s->n_lat)
    idx = s->n_lat - 1;
  return s->lat_us[idx] / 1000.0;
}
