/* provd-tls-baseline: the ceiling the registration benchmark compares
 * against.  It runs provd's own listener stack (core/net/http.h, the same
 * worker count, the SSL_CTX from tls_server_ctx_new over the same data-dir
 * certificate) and answers every request with the fixed 202 JSON body
 * bench/run.sh also gives nginx, so the CPU a registration costs on top of
 * this answer is the cost of provisioning itself.
 *
 *   provd-tls-baseline --data-dir DIR --listen HOST:PORT [--workers N]
 *
 * Prints "listening https://HOST:PORT workers N" once it serves; stops on
 * SIGTERM/SIGINT. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "net/http.h"
#include "tls/pki.h"
#include "tls/server_ctx.h"
#include "util/num.h"

/* Keep in step with NGINX_BODY in bench/run.sh. */
#define FIXED_BODY                                                          \
  "{\"operationId\":\"5.0000000000000000.00000000-0000-0000-0000-"          \
  "000000000000\",\"status\":\"assigning\"}"
#define MAX_WORKERS 256
#define STOP_GRACE_MS 2000

struct baseline_opts {
  const char *data_dir;
  struct cfg_listen listen;
  int workers;
};

static void answer_fixed(struct http_exchange *ex, void *ud)
{
  (void)ud;
  http_respond(ex, 202, "application/json; charset=utf-8", FIXED_BODY,
               sizeof FIXED_BODY - 1, NULL, 0);
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
  long workers;
  char msg[256];
  int c;
  o->data_dir = NULL;
  snprintf(o->listen.host, sizeof o->listen.host, "127.0.0.1");
  o->listen.port = 8444;
  o->workers = cores > 0 && cores <= MAX_WORKERS ? (int)cores : 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'd')
      o->data_dir = optarg;
    else if (c == 'l' && config_parse_listen(optarg, &o->listen, msg,
                                             sizeof msg) == 0)
      continue;
    else if (c == 'w' && num_parse_long(optarg, 1, MAX_WORKERS, &workers) == 0)
      o->workers = (int)workers;
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
  struct tls_libs *libs;
  SSL_CTX *ctx;
  int sig = 0;

  if (pki_init_data_dir(o->data_dir, NULL, NULL, &paths, &err) != 0) {
    fprintf(stderr, "provd-tls-baseline: %s: %s\n", err.code, err.msg);
    return 1;
  }
  libs = tls_libs_new(o->workers, &err);
  ctx = libs ? tls_server_ctx_new(paths.cert, paths.key, libs, &err) : NULL;
  if (!ctx) {
    fprintf(stderr, "provd-tls-baseline: %s: %s\n", err.code, err.msg);
    tls_libs_free(libs);
    return 1;
  }
  block_stop_signals(&stop_set);
  hopts.host = o->listen.host;
  hopts.port = o->listen.port;
  hopts.workers = o->workers;
  hopts.ssl = ctx;
  hopts.handler = answer_fixed;
  if (http_server_start(&hopts, &srv, &err) != 0) {
    fprintf(stderr, "provd-tls-baseline: %s: %s\n", err.code, err.msg);
    SSL_CTX_free(ctx);
    tls_libs_free(libs);
    return 1;
  }
  printf("listening https://%s:%d workers %d\n", o->listen.host,
         http_server_port(srv), o->workers);
  fflush(stdout);
  sigwait(&stop_set, &sig);
  http_server_stop(srv, STOP_GRACE_MS);
  SSL_CTX_free(ctx);
  tls_libs_free(libs);
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
