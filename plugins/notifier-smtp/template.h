/* {{name}} templates of the smtp notifier: names are looked up in a flat
 * JSON object of strings; unknown names render as "". */
#ifndef NOTIFIER_SMTP_TEMPLATE_H
#define NOTIFIER_SMTP_TEMPLATE_H

#include <jansson.h>

/* Caller frees; NULL on out of memory or when the result would exceed
 * max bytes. */
char *template_render(const char *tmpl, const json_t *values, size_t max);

#endif
