#include "swtpm_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int bound_socket(int port, int *port_out)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
                  getsockname(fd, (struct sockaddr *)&sa, &len))) {
    close(fd);
    fd = -1;
  }
  if (fd >= 0 && port_out)
    *port_out = ntohs(sa.sin_port);
  return fd;
}

/* A free port P with P + 1 free too: the swtpm TCTI finds the control
 * channel at the command port + 1. */
static int free_port_pair(int *port)
{
  for (int attempt = 0; attempt < 50; attempt++) {
    int p = 0, a = bound_socket(0, &p);
    int b = a >= 0 && p < 65535 ? bound_socket(p + 1, NULL) : -1;
    if (a >= 0)
      close(a);
    if (b >= 0) {
      close(b);
      *port = p;
      return 0;
    }
  }
  return -1;
}

static int answers(int port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

int swtpm_start(struct swtpm *t)
{
  memset(t, 0, sizeof(*t));
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(t->dir, sizeof(t->dir), "%s/provd-swtpm-XXXXXX", tmp);
  if (!mkdtemp(t->dir) || free_port_pair(&t->port) != 0) {
    perror("swtpm fixture");
    return -1;
  }
  char server[96], control[96], state[300];
  snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1",
           t->port);
  snprintf(control, sizeof(control), "type=tcp,port=%d,bindaddr=127.0.0.1",
           t->port + 1);
  snprintf(state, sizeof(state), "dir=%s", t->dir);
  snprintf(t->tcti, sizeof(t->tcti), "swtpm:host=127.0.0.1,port=%d",
           t->port);
  t->pid = fork();
  if (t->pid == 0) {
    execlp("swtpm", "swtpm", "socket", "--tpm2", "--server", server,
           "--ctrl", control, "--flags", "not-need-init,startup-clear",
           "--tpmstate", state, (char *)NULL);
    perror("swtpm (apt-get install swtpm, or scripts/install-deps.sh)");
    _exit(127);
  }
  for (int i = 0; i < 500 && t->pid > 0; i++) { /* up to 5 s */
    if (answers(t->port))
      return 0;
    if (waitpid(t->pid, NULL, WNOHANG) == t->pid) {
      t->pid = 0;
      break;
    }
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  fprintf(stderr, "swtpm did not start on port %d\n", t->port);
  swtpm_stop(t);
  return -1;
}

void swtpm_stop(struct swtpm *t)
{
  if (t->pid > 0) {
    kill(t->pid, SIGTERM);
    waitpid(t->pid, NULL, 0);
    t->pid = 0;
  }
  if (t->dir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", t->dir);
    t->dir[0] = '\0';
  }
}
