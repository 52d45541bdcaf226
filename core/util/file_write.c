/* Atomic small-file writes (file_write.h): the data dir's keys and
 * certificates, backup files and their restore. */
#include "util/file_write.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void fsync_parent(const char *path)
{
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Moves the finished temporary file into place: rename() replaces,
 * link() refuses an existing target. */
static int publish(const char *tmp, const char *path, int replace,
                   struct provd_err *err)
{
  int rc = replace ? rename(tmp, path) : link(tmp, path);
  int saved = errno;
  if (rc != 0 || !replace)
    unlink(tmp);
  if (rc == 0)
    return 0;
  if (saved == EEXIST) {
    perr_set(err, "FILE_EXISTS", "%s exists; not replaced", path);
    return 1;
  }
  perr_set(err, "FILE_IO", "cannot move %s to %s: %s", tmp, path,
           strerror(saved));
  return -1;
}

int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, int replace, struct provd_err *err)
{
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
    perr_set(err, "FILE_IO", "path too long: %s", path);
    return -1;
  }
  int fd = mkstemp(tmp);
  if (fd < 0) {
    perr_set(err, "FILE_IO", "cannot create %s: %s", tmp, strerror(errno));
    return -1;
  }
  if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    perr_set(err, "FILE_IO", "cannot write %s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    return -1;
  }
  close(fd);
  int rc = publish(tmp, path, replace, err);
  if (rc == 0)
    fsync_parent(path);
  return rc;
}
