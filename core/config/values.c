/* Small parsers and helpers shared by the core schema and the plugin
 * option checks: "did you mean" hints, numbers, durations, sizes,
 * base64, secret files, listen addresses. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "config/tree.h"
#include "util/b64.h"

char *cfg_strdup(const char *s)
{
  return s ? strdup(s) : NULL;
}

/* ---- hints ---- */

#define HINT_MAX_LEN 64

static int lower(int c)
{
  return tolower((unsigned char)c);
}

/* Optimal string alignment distance (Levenshtein plus swaps of two
 * neighbours), case-insensitive; both strings <= HINT_MAX_LEN. */
static int edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  int rows[3][HINT_MAX_LEN + 1];
  int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= lb; j++)
    prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cost = lower(a[i - 1]) != lower(b[j - 1]);
      int best = prev[j - 1] + cost;
      if (prev[j] + 1 < best)
        best = prev[j] + 1;
      if (cur[j - 1] + 1 < best)
        best = cur[j - 1] + 1;
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]) && prev2[j - 2] + 1 < best)
        best = prev2[j - 2] + 1;
      cur[j] = best;
    }
    int *t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb];
}

/* One is a prefix of the other and the shorter has 3+ characters. */
static int prefix_related(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  size_t shorter = la < lb ? la : lb;
  return shorter >= 3 && strncasecmp(a, b, shorter) == 0;
}

const char *cfg_hint(const char *word, const char *const *candidates)
{
  const char *best = NULL, *prefix = NULL;
  int best_d = 3;
  if (!word || strlen(word) > HINT_MAX_LEN)
    return NULL;
  for (size_t i = 0; candidates && candidates[i]; i++) {
    const char *c = candidates[i];
    if (strlen(c) > HINT_MAX_LEN)
      continue;
    size_t longer = strlen(c) > strlen(word) ? strlen(c) : strlen(word);
    int d = edit_distance(word, c);
    /* A short word is "close" to everything; require real overlap. */
    if (d < best_d && (size_t)(2 * d) <= longer) {
      best = c;
      best_d = d;
    }
    if (!prefix && prefix_related(word, c))
      prefix = c;
  }
  return best ? best : prefix;
}

const char *cfg_hint_text(const char *word, const char *const *candidates,
                          char *buf, size_t len)
{
  const char *h = cfg_hint(word, candidates);
  if (h)
    snprintf(buf, len, " (did you mean '%s'?)", h);
  else if (len)
    buf[0] = '\0';
  return buf;
}

/* ---- numbers ---- */

int cfg_parse_int(const char *text, long long *out)
{
  char *end;
  if (!text || !*text || isspace((unsigned char)*text))
    return -1;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

int cfg_parse_bool(const char *text, int *out)
{
  static const char *const yes[] = {"true", "yes", "on", NULL};
  static const char *const no[] = {"false", "no", "off", NULL};
  for (size_t i = 0; text && yes[i]; i++) {
    if (!strcasecmp(text, yes[i])) {
      *out = 1;
      return 0;
    }
    if (!strcasecmp(text, no[i])) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

int cfg_parse_double(const char *text, double *out)
{
  char *end;
  if (!text || !*text || isspace((unsigned char)*text))
    return -1;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || *end || !isfinite(v))
    return -1;
  *out = v;
  return 0;
}

/* Leading decimal digits as an unsigned value; -1 on none or overflow. */
static int parse_digits(const char **p, unsigned long long *out)
{
  unsigned long long v = 0;
  const char *s = *p;
  if (!isdigit((unsigned char)*s))
    return -1;
  while (isdigit((unsigned char)*s)) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (ULLONG_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
    s++;
  }
  *p = s;
  *out = v;
  return 0;
}

struct unit {
  const char *name;
  unsigned long long factor;
};

/* Whole-string "NUMBER[UNIT]"; a missing unit uses factor `bare`. */
static int parse_with_unit(const char *text, const struct unit *units,
                           unsigned long long bare, unsigned long long *out)
{
  const char *p = text;
  unsigned long long v, factor = bare;
  if (!text || parse_digits(&p, &v))
    return -1;
  while (*p == ' ')
    p++;
  if (*p) {
    factor = 0;
    for (size_t i = 0; units[i].name; i++)
      if (!strcasecmp(p, units[i].name))
        factor = units[i].factor;
    if (!factor)
      return -1;
  }
  if (v > LLONG_MAX / factor)
    return -1;
  *out = v * factor;
  return 0;
}

int cfg_parse_duration_ms(const char *text, long long *out)
{
  static const struct unit units[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0}};
  unsigned long long v;
  if (parse_with_unit(text, units, 1000, &v))
    return -1;
  *out = (long long)v;
  return 0;
}

int cfg_parse_size(const char *text, unsigned long long *out)
{
  static const struct unit units[] = {
      {"B", 1},           {"KB", 1000ULL},     {"KiB", 1ULL << 10},
      {"MB", 1000000ULL}, {"MiB", 1ULL << 20}, {"GB", 1000000000ULL},
      {"GiB", 1ULL << 30}, {NULL, 0}};
  return parse_with_unit(text, units, 1, out);
}

/* ---- base64 ---- */

/* Decodes with the same b64_decode the SAS code uses, so a key accepted
 * here is a key the service API can verify tokens with. */
int cfg_base64_ok(const char *text)
{
  uint8_t buf[512];
  size_t n = 0;
  int ok = text && b64_decode(text, buf, sizeof(buf), &n) == 0 && n > 0;
  OPENSSL_cleanse(buf, sizeof(buf));
  return ok;
}

size_t cfg_base64_len(const char *text)
{
  uint8_t buf[512];
  size_t n = 0;
  if (!text || b64_decode(text, buf, sizeof(buf), &n) != 0)
    n = 0;
  OPENSSL_cleanse(buf, sizeof(buf));
  return n;
}

/* ---- files ---- */

char *cfg_read_small_file(const char *path, size_t max, char *msg,
                          size_t msg_len)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, msg_len, "%s", strerror(errno));
    return NULL;
  }
  char *buf = malloc(max + 2);
  if (!buf) {
    fclose(f);
    snprintf(msg, msg_len, "out of memory");
    return NULL;
  }
  size_t n = fread(buf, 1, max + 1, f);
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (err) {
    snprintf(msg, msg_len, "%s", strerror(err));
  } else if (n > max) {
    snprintf(msg, msg_len, "file is larger than %zu bytes", max);
  } else if (memchr(buf, '\0', n)) {
    snprintf(msg, msg_len, "file contains a NUL byte");
  } else {
    if (n && buf[n - 1] == '\n')
      n--;
    if (n && buf[n - 1] == '\r')
      n--;
    buf[n] = '\0';
    return buf;
  }
  free(buf);
  return NULL;
}

/* ---- listen addresses ---- */

static int parse_port(const char *s, int *port)
{
  long v = 0;
  size_t n = 0;
  for (; s[n]; n++) {
    if (!isdigit((unsigned char)s[n]) || n >= 5)
      return -1;
    v = v * 10 + (s[n] - '0');
  }
  if (n == 0 || v > 65535)
    return -1;
  *port = (int)v;
  return 0;
}

static int host_ok(const char *host, int bracketed)
{
  unsigned char addr[16];
  if (bracketed)
    return inet_pton(AF_INET6, host, addr) == 1;
  return !strcmp(host, "localhost") || inet_pton(AF_INET, host, addr) == 1;
}

int config_parse_listen(const char *text, struct cfg_listen *out,
                        char *msg, size_t msg_len)
{
  char host[sizeof(out->host)];
  const char *colon, *hs = text;
  size_t hl;
  int bracketed = text && text[0] == '[';
  if (bracketed) {
    const char *close = strchr(text, ']');
    if (!close || close[1] != ':') {
      snprintf(msg, msg_len, "expected [IPV6]:PORT");
      return -1;
    }
    hs = text + 1;
    hl = (size_t)(close - hs);
    colon = close + 1;
  } else {
    colon = text ? strrchr(text, ':') : NULL;
    if (!colon) {
      snprintf(msg, msg_len, "expected HOST:PORT");
      return -1;
    }
    hl = (size_t)(colon - text);
  }
  if (hl == 0 || hl >= sizeof(host)) {
    snprintf(msg, msg_len, "missing or too long host");
    return -1;
  }
  memcpy(host, hs, hl);
  host[hl] = '\0';
  if (!host_ok(host, bracketed)) {
    snprintf(msg, msg_len,
             "host must be an IPv4 address, [IPv6] address or localhost");
    return -1;
  }
  int port;
  if (parse_port(colon + 1, &port)) {
    snprintf(msg, msg_len, "port must be a number 0..65535");
    return -1;
  }
  memcpy(out->host, host, hl + 1);
  out->port = port;
  return 0;
}
