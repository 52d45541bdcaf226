#include "util/err.h"

#include <stdio.h>
#include <string.h>

#include "provd/plugin.h"

void perr_vset(struct provd_err *e, const char *code, const char *fmt,
               va_list ap)
{
  if (!e)
    return;
  snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
  if (fmt)
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
  else
    e->msg[0] = '\0';
}

void perr_set(struct provd_err *e, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  perr_vset(e, code, fmt, ap);
  va_end(ap);
}

void perr_clear(struct provd_err *e)
{
  if (e) {
    e->code[0] = '\0';
    e->msg[0] = '\0';
  }
}

const char *perr_strstatus(int status)
{
  switch (status) {
#define PERR_TEXT_(name, val, msg) case val: return msg;
    PROVD_STATUS_MAP(PERR_TEXT_)
#undef PERR_TEXT_
  default:
    return "unknown status";
  }
}

const char *perr_status_name(int status)
{
  switch (status) {
#define PERR_NAME_(name, val, msg) case val: return #name;
    PROVD_STATUS_MAP(PERR_NAME_)
#undef PERR_NAME_
  default:
    return "UNKNOWN";
  }
}
