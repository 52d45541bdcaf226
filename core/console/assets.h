/* The console's static files, embedded at build time
 * (cmake/EmbedAssets.cmake writes the table from core/console/www). */
#ifndef CORE_CONSOLE_ASSETS_H
#define CORE_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
  const char *name; /* "index.html", "app.js": relative to /console/ */
  const unsigned char *data;
  size_t len;
};

/* Ends with a {NULL, NULL, 0} entry. */
extern const struct console_asset console_assets[];

#endif
