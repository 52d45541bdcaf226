/* provd-tls-baseline: the ceiling the registration benchmark compares
 * against.  It runs provd's own listener stack (core/net/http.h, the same
 * worker count, the SSL_CTX from tls_server_ctx_new over the same data-dir
 * certificate) and answers every request with a fixed small JSON body, so
 * register_rate / baseline_rate isolates the cost of provisioning itself.
 *
 *   provd-tls-baseline --data-dir DIR --listen HOST:PORT [--workers N]
 *
 * Prints "listening https://HOST:PORT workers N" once it serves; stops on
 * SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/http.h"
#include "tls/pki.h"

#define FIXED_BODY "{\"status\":\"ok\"}"
#define MAX_WORKERS 256
#define STOP_GRACE_MS 2000

struct baseline_opts {
  const char *data_dir;
  char host[256];
  int port;
  int workers;
};

static void answer_fixed(struct http_exchange *ex, void *ud)
{
  (void)ud;
  http_respond(ex, 200, "application/json; charset=utf-8", FIXED_BODY,
               sizeof FIXED_BODY - 1, NULL, 0);
}

static int parse_int(const char *text, int min, int max, int *out)
{
  char *end;
  long v;
  errno = 0;
  v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < min || v > max)
    return -1;
  *out = (int)v;
  return 0;
}

/* HOST:PORT; the host may be [v6]. */
static int parse_listen(const char *text, struct baseline_opts *o)
{
  const char *colon = strrchr(text, ':');
  const char *host = text;
  size_t len;
  if (!colon)
    return -1;
  len = (size_t)(colon - text);
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
    host++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof o->host)
    return -1;
  memcpy(o->host, host, len);
  o->host[len] = '\0';
  return parse_int(colon + 1, 0, 65535, &o->port);
}

static int parse_args(int argc, char **argv, struct baseline_opts *o)
{
  static const struct option opts[] = {
    { "data-dir", required_argument, NULL, 'd' },
    { "listen", required_argument, NULL, 'l' },
    { "workers", required_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int c;
  o->data_dir = NULL;
  snprintf(o->host, sizeof o->host, "127.0.0.1");
  o->port = 8444;
  o->workers = cores > 0 && cores <= MAX_WORKERS ? (int)cores : 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'd')
      o->data_dir = optarg;
    else if (c == 'l' && parse_listen(optarg, o) == 0)
      continue;
    else if (c == 'w' && parse_int(optarg, 1, MAX_WORKERS, &o->workers) == 0)
      continue;
    else
      return -1;
  }
  return o->data_dir && optind == argc ? 0 : -1;
}

/* Signals are blocked before the workers start (they inherit the mask),
 * so only sigwait() in the main thread sees them. */
static void block_stop_signals(sigset_t *set)
{
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  pthread_sigmask(SIG_BLOCK, set, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static int serve(const struct baseline_opts *o)
{
  struct provd_err err = { 0 };
  struct pki_paths paths;
  struct http_server *srv = NULL;
  struct http_server_opts hopts = { 0 };
  sigset_t stop_set;
  SSL_CTX *ctx;
  int sig = 0;

  if (pki_init_data_dir(o->data_dir, NULL, NULL, &paths, &err) != 0) {
    fprintf(stderr, "provd-tls-baseline: %s: %s\n", err.code, err.msg);
    return 1;
  }
  ctx = tls_server_ctx_new(paths.cert, paths.key, &err);
  if (!ctx) {
    fprintf(stderr, "provd-tls-baseline: %s: %s\n", err.code, err.msg);
    return 1;
  }
  block_stop_signals(&stop_set);
  hopts.host = o->host;
  hopts.port = o->port;
  hopts.workers = o->workers;
  hopts.ssl = ctx;
  hopts.handler = answer_fixed;
  if (http_server_start(&hopts, &srv, &err) != 0) {
    fprintf(stderr, "provd-tls-baseline: %s: %s\n", err.code, err.msg);
    SSL_CTX_free(ctx);
    return 1;
  }
  printf("listening https://%s:%d workers %d\n", o->host,
         http_server_port(srv), o->workers);
  fflush(stdout);
  sigwait(&stop_set, &sig);
  http_server_stop(srv, STOP_GRACE_MS);
  SSL_CTX_free(ctx);
  return 0;
}

int main(int argc, char **argv)
{
  struct baseline_opts o;
  if (parse_args(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: provd-tls-baseline --data-dir DIR "
                    "[--listen HOST:PORT] [--workers N]\n");
    return 2;
  }
  return serve(&o);
}
