/* The web console: static pages under /console/ on the service listener.
 * The pages talk to the service API like any other client (the browser
 * signs SAS tokens itself), so serving them needs no authentication and
 * holds no state. */
#ifndef CORE_CONSOLE_CONSOLE_H
#define CORE_CONSOLE_CONSOLE_H

#include <stdbool.h>

#include "net/http.h"

#define CONSOLE_PATH "/console/"

/* True when path (raw, without query) belongs to the console. */
bool console_owns_path(const char *path);

/* Answers a request for a console path (with the console's security
 * headers, also on 404 and 405). */
void console_handle(struct http_exchange *ex);

#endif
