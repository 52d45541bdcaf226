/* Structured logging to stderr, one line per event, safe from any thread:
 *   2026-11-23T10:00:00.123Z info  engine: assigned regid=dev-1 hub=hub-1
 * Never pass secrets. */
#ifndef CORE_UTIL_LOG_H
#define CORE_UTIL_LOG_H

#include <stdarg.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(int level);
int log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *name);
void log_msg(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(int level, const char *component, const char *fmt,
              va_list ap);

/* Between these two, this thread's info and debug lines are written
 * together at the end (or when 16 KiB are waiting): one write(2) for a
 * store batch's per-registration lines.  Warnings and errors still leave
 * at once, after the lines before them. */
void log_batch_begin(void);
void log_batch_end(void);

#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)

#endif
