/* Writing a small file so that a reader, even after a crash, sees the old
 * file or the whole new one: the data, fsync'd, goes to a temporary file
 * beside it that is then moved into place, and the directory is synced. */
#ifndef CORE_UTIL_FILE_WRITE_H
#define CORE_UTIL_FILE_WRITE_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* replace: 1 replaces an existing file; 0 refuses one (FILE_EXISTS,
 * return 1) without a moment where a partial file is visible.  0, or -1
 * with err (FILE_IO, naming the file). */
int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, int replace, struct provd_err *err);

#endif
