#include "util/service_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/num.h"

/* Fills addr from NOTIFY_SOCKET; its length, or 0 when the name is not a
 * socket path ("/...") or an abstract name ("@..."). */
static socklen_t notify_address(const char *name, struct sockaddr_un *addr)
{
  size_t len = strlen(name);
  if (len < 2 || len >= sizeof(addr->sun_path) ||
      (name[0] != '/' && name[0] != '@'))
    return 0;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, name, len);
  if (name[0] == '@') {
    addr->sun_path[0] = '\0'; /* abstract: the length bounds the name */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  }
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

int service_notify(const char *state)
{
  const char *name = getenv("NOTIFY_SOCKET");
  if (!name || !name[0])
    return 0;
  struct sockaddr_un addr;
  socklen_t addr_len = notify_address(name, &addr);
  if (addr_len == 0) {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  size_t len = strlen(state);
  ssize_t sent = sendto(fd, state, len, MSG_NOSIGNAL,
                        (const struct sockaddr *)&addr, addr_len);
  int saved = errno;
  close(fd);
  if (sent != (ssize_t)len) {
    errno = sent < 0 ? saved : EMSGSIZE;
    return -1;
  }
  return 1;
}

long service_watchdog_interval_ms(void)
{
  const char *usec = getenv("WATCHDOG_USEC");
  const char *pid = getenv("WATCHDOG_PID");
  long value;
  if (!usec || num_parse_long(usec, 1, 24L * 3600 * 1000000, &value) != 0)
    return 0;
  long owner;
  if (pid && (num_parse_long(pid, 1, 0x7fffffffL, &owner) != 0 ||
              owner != (long)getpid()))
    return 0;
  long ms = value / 2000;
  return ms > 0 ? ms : 1;
}
