/* Errors as values: a stable reason code plus a human message.  This is
 * the definition behind the opaque `struct provd_err` of the plugin ABI. */
#ifndef CORE_UTIL_ERR_H
#define CORE_UTIL_ERR_H

#include <stdarg.h>

#include "provd/err.h"   /* struct provd_err */

void perr_set(struct provd_err *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void perr_vset(struct provd_err *e, const char *code, const char *fmt,
               va_list ap);
void perr_clear(struct provd_err *e);
/* The text of a provd_status value ("success", "no such record", ...). */
const char *perr_strstatus(int status);
/* The symbolic name of a provd_status value ("OK", "NOT_FOUND", ...). */
const char *perr_status_name(int status);

#endif
