#include "util/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A small fixed table: provd has a few dozen series, so a linear scan under
 * one mutex is cheaper than anything cleverer.  Bounded: beyond
 * METRICS_MAX series new ones are dropped (and counted). */
#define METRICS_MAX 512

struct series {
  char name[96];
  char labels[160];
  char help[160];
  int is_gauge;
  double value;
};

static struct series table[METRICS_MAX];
static size_t n_series;
static unsigned long dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct series *find_or_add(const char *name, const char *help,
                                  const char *labels, int is_gauge)
{
  const char *l = labels ? labels : "";
  for (size_t i = 0; i < n_series; i++)
    if (strcmp(table[i].name, name) == 0 && strcmp(table[i].labels, l) == 0)
      return &table[i];
  if (n_series == METRICS_MAX) {
    dropped++;
    return NULL;
  }
  struct series *s = &table[n_series++];
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
