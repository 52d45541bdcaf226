/* Process-wide Prometheus counters and gauges.  Thread-safe. */
#ifndef CORE_UTIL_METRICS_H
#define CORE_UTIL_METRICS_H

/* Adds v to the counter `name{labels}`; labels is the inside of the
 * braces, e.g. "code=\"200\"", or NULL.  The first call registers the
 * metric with its help text. */
void metrics_add(const char *name, const char *help, const char *labels,
                 double v);
void metrics_set(const char *name, const char *help, const char *labels,
                 double v); /* gauge */
/* Prometheus text exposition format 0.0.4; caller frees. */
char *metrics_render(void);

#endif
