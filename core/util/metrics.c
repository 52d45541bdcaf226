#include "util/metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A small fixed table in registration order (the order /metrics shows),
 * found through an open-addressing index: counters are bumped several
 * times per request on every thread, and a linear scan of strcmp()s under
 * the lock showed in profiles.  Bounded: beyond METRICS_MAX series new
 * ones are dropped (and counted). */
#define METRICS_MAX 512
#define INDEX_SLOTS 1024 /* power of two, at least twice METRICS_MAX */

struct series {
  char name[96];
  char labels[160];
  char help[160];
  int is_gauge;
  double value;
};

static struct series table[METRICS_MAX];
static unsigned short slot_of[INDEX_SLOTS]; /* 1 + table index; 0 empty */
static size_t n_series;
static unsigned long dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a over name, a separator no name contains, and labels. */
static size_t index_hash(const char *name, const char *labels)
{
  uint32_t h = 2166136261u;
  for (const char *p = name; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  h = (h ^ 0xffu) * 16777619u;
  for (const char *p = labels; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  return h & (INDEX_SLOTS - 1);
}

static struct series *find_or_add(const char *name, const char *help,
                                  const char *labels, int is_gauge)
{
  const char *l = labels ? labels : "";
  size_t i = index_hash(name, l);
  /* The index is never full (twice the table), so a free slot ends it. */
  for (; slot_of[i]; i = (i + 1) & (INDEX_SLOTS - 1)) {
    struct series *s = &table[slot_of[i] - 1];
    if (strcmp(s->name, name) == 0 && strcmp(s->labels, l) == 0)
      return s;
  }
  if (n_series == METRICS_MAX) {
    dropped++;
    return NULL;
  }
  struct series *s = &table[n_series++];
  slot_of[i] = (unsigned short)n_series;
  snprintf(s->name, sizeof(s->name), "%s", name);
  snprintf(s->labels, sizeof(s->labels), "%s", l);
  snprintf(s->help, sizeof(s->help), "%s", help ? help : "");
  s->is_gauge = is_gauge;
  s->value = 0;
  return s;
}

void metrics_add(const char *name, const char *help, const char *labels,
                 double v)
{
  pthread_mutex_lock(&lock);
  struct series *s = find_or_add(name, help, labels, 0);
  if (s)
    s->value += v;
  pthread_mutex_unlock(&lock);
}

void metrics_set(const char *name, const char *help, const char *labels,
                 double v)
{
  pthread_mutex_lock(&lock);
  struct series *s = find_or_add(name, help, labels, 1);
  if (s)
    s->value = v;
  pthread_mutex_unlock(&lock);
}

static int already_described(size_t upto, const char *name)
{
  for (size_t j = 0; j < upto; j++)
    if (strcmp(table[j].name, name) == 0)
      return 1;
  return 0;
}

char *metrics_render(void)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < n_series; i++) {
    const struct series *s = &table[i];
    if (!already_described(i, s->name)) {
      fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
              s->is_gauge ? "gauge" : "counter");
      for (size_t j = i; j < n_series; j++) {
        const struct series *t = &table[j];
        if (strcmp(t->name, s->name) != 0)
          continue;
        if (t->labels[0])
          fprintf(f, "%s{%s} %.17g\n", t->name, t->labels, t->value);
        else
          fprintf(f, "%s %.17g\n", t->name, t->value);
      }
    }
  }
  fprintf(f, "# HELP provd_metrics_dropped_total Series not recorded "
             "because the table was full.\n"
             "# TYPE provd_metrics_dropped_total counter\n"
             "provd_metrics_dropped_total %lu\n", dropped);
  pthread_mutex_unlock(&lock);
  fclose(f);
  return buf;
}
