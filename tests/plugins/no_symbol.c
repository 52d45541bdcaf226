/* Test plugin: a shared object that exports no provd_plugin_v1 (its
 * author misspelt the symbol). */
#include "provd/plugin.h"

PROVD_EXPORT extern const int provd_plugin_v0;
PROVD_EXPORT const int provd_plugin_v0 = 1;
