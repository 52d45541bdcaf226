/* Collected configuration diagnostics, "FILE:LINE:COL: message". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/* A broken file should not flood the terminal. */
#define DIAG_MAX_LINES 200

static void diag_push(struct diag *d, char *line)
{
  char **lines = realloc(d->lines, (d->n + 1) * sizeof(*lines));
  if (!lines) {
    free(line);
    return;
  }
  d->lines = lines;
  d->lines[d->n++] = line;
}

void diag_add(struct diag *d, const struct cfg_pos *pos, const char *fmt,
              ...)
{
  if (!d || d->n > DIAG_MAX_LINES)
    return;
  if (d->n == DIAG_MAX_LINES) {
    char *stop = strdup("too many errors; stopping here");
    if (stop)
      diag_push(d, stop);
    return;
  }
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  char *line = NULL;
  int rc;
  if (!pos || !pos->file)
    rc = asprintf(&line, "%s", msg);
  else if (pos->line <= 0)
    rc = asprintf(&line, "%s: %s", pos->file, msg);
  else
    rc = asprintf(&line, "%s:%d:%d: %s", pos->file, pos->line, pos->col, msg);
  if (rc < 0)
    return;
  diag_push(d, line);
}

void diag_print(const struct diag *d)
{
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++)
    fprintf(stderr, "%s\n", d->lines[i]);
}

void diag_free(struct diag *d)
{
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++)
    free(d->lines[i]);
  free(d->lines);
  d->lines = NULL;
  d->n = 0;
}
