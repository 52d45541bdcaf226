/* provd-loadgen: registration load generator for provd (see
 * docs/benchmark.md).  Options, the run, and the report. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "util/num.h"

#define DEFAULT_CONCURRENCY 200
#define DEFAULT_ENROLL_CONCURRENCY 8
#define DEFAULT_DURATION_S 10.0
#define MAX_CONCURRENCY 20000
#define MAX_COUNT 100000000L
#define MAX_THREADS 64

static void usage(FILE *f)
{
  fprintf(f,
"usage: provd-loadgen [--mode register|register-mqtt|register-tpm|baseline|enroll|enroll-bulk]\n"
"                     --url https://HOST:PORT\n"
"                     [--ca FILE] [--data-dir DIR] [--concurrency N]\n"
"                     [--duration S | --count N] [--scope ID_SCOPE]\n"
"                     [--prefix bench-dev-] [--ids N] [--keys-seed SEED]\n"
"                     [--group-key B64] [--connection-string CS]\n"
"                     [--timeout S] [--max-polls N] [--max-errors N]\n"
"                     [--requests-per-conn N] [--api-version V]\n"
"                     [--threads N] [--client-ca PEM --client-ca-key PEM]\n"
"                     [--tpm-keys PEM] [--rate R] [--first-id N]\n"
"Every register/baseline unit is a new connection with a full TLS handshake.\n"
"enroll: creates --count individual symmetric-key enrollments prefix0..\n"
"with keys base64(HMAC-SHA256(seed, regid)) through the service API.\n"
"enroll-bulk: --ids N of them, 10 per bulk operation; --count = N/10 rounded up.\n"
"--client-ca: register/baseline devices present a certificate (CN = their\n"
"registration id, ECDSA P-256, signed by that CA) instead of a SAS token.\n"
"--tpm-keys PEM (two RSA-2048 keys, EK then SRK): enroll/enroll-bulk create TPM\n"
"enrollments with that EK; register-tpm replays the DPS TPM flow with them in\n"
"software (401 challenge, activation, token signed with the imported key).\n"
"--rate R: open loop; R units start per second whatever the server answers\n"
"(up to --concurrency at once; arrivals beyond it are reported as missed).\n"
"Without it a connection starts its next unit when one ends (closed loop).\n"
"--first-id N: unit u registers device (N + u) mod --ids (default 0); the\n"
"report's next_id= is where a following run starts on devices not yet used.\n");
}

/* ---- option parsing ---- */


static int parse_double(const char *text, double min, double max,
                        double *out)
{
  char *end;
  double v;
  errno = 0;
  v = strtod(text, &end);
  if (errno || end == text || *end || !(v >= min && v <= max))
    return -1;
  *out = v;
  return 0;
}

/* https://HOST:PORT[/], HOST may be [v6]. */
static int parse_url(struct lg_opts *o)
{
  const char *p = o->url, *host, *host_end, *colon;
  long port;
  char port_text[16];
  size_t hlen, plen;
  if (strncmp(p, "https://", 8) != 0)
    return -1;
  host = p + 8;
  if (*host == '[') {
    host_end = strchr(host, ']');
    if (!host_end)
      return -1;
    host++;
    colon = host_end + 1;
  } else {
    colon = strchr(host, ':');
    host_end = colon;
  }
  if (!colon || *colon != ':')
    return -1;
  hlen = (size_t)(host_end - host);
  plen = strcspn(colon + 1, "/");
  if (hlen == 0 || hlen >= sizeof o->host || plen == 0 ||
      plen >= sizeof port_text)
    return -1;
  memcpy(o->host, host, hlen);
  o->host[hlen] = '\0';
  memcpy(port_text, colon + 1, plen);
  port_text[plen] = '\0';
  if (num_parse_long(port_text, 1, 65535, &port) != 0)
    return -1;
  o->port = (int)port;
  return 0;
}

/* Registration ids go unescaped into paths and JSON: DPS's own alphabet. */
static int valid_prefix(const char *s)
{
  if (strlen(s) > LG_MAX_ID - 24)
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '.' || *s == '_' || *s == ':'))
      return 0;
  return 1;
}

/* ID scopes and api-versions: letters, digits, '-' and '.'. */
static int valid_token(const char *s)
{
  if (*s == '\0' || strlen(s) > 64)
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
      return 0;
  return 1;
}

enum opt_id {
  OPT_MODE = 256, OPT_URL, OPT_CA, OPT_DATA_DIR, OPT_CONCURRENCY,
  OPT_DURATION, OPT_COUNT, OPT_SCOPE, OPT_PREFIX, OPT_IDS, OPT_KEYS_SEED,
  OPT_GROUP_KEY, OPT_CONN_STRING, OPT_TIMEOUT, OPT_MAX_POLLS,
  OPT_MAX_ERRORS, OPT_REQ_PER_CONN, OPT_API_VERSION, OPT_THREADS, OPT_HELP,
  OPT_CLIENT_CA, OPT_CLIENT_CA_KEY, OPT_TPM_KEYS, OPT_RATE, OPT_FIRST_ID
};

/* Same order as enum opt_id: error messages index it by id. */
static const struct option long_opts[] = {
  { "mode", required_argument, NULL, OPT_MODE },
  { "url", required_argument, NULL, OPT_URL },
  { "ca", required_argument, NULL, OPT_CA },
  { "data-dir", required_argument, NULL, OPT_DATA_DIR },
  { "concurrency", required_argument, NULL, OPT_CONCURRENCY },
  { "duration", required_argument, NULL, OPT_DURATION },
  { "count", required_argument, NULL, OPT_COUNT },
  { "scope", required_argument, NULL, OPT_SCOPE },
  { "prefix", required_argument, NULL, OPT_PREFIX },
  { "ids", required_argument, NULL, OPT_IDS },
  { "keys-seed", required_argument, NULL, OPT_KEYS_SEED },
  { "group-key", required_argument, NULL, OPT_GROUP_KEY },
  { "connection-string", required_argument, NULL, OPT_CONN_STRING },
  { "timeout", required_argument, NULL, OPT_TIMEOUT },
  { "max-polls", required_argument, NULL, OPT_MAX_POLLS },
  { "max-errors", required_argument, NULL, OPT_MAX_ERRORS },
  { "requests-per-conn", required_argument, NULL, OPT_REQ_PER_CONN },
  { "api-version", required_argument, NULL, OPT_API_VERSION },
  { "threads", required_argument, NULL, OPT_THREADS },
  { "help", no_argument, NULL, OPT_HELP },
  { "client-ca", required_argument, NULL, OPT_CLIENT_CA },
  { "client-ca-key", required_argument, NULL, OPT_CLIENT_CA_KEY },
  { "tpm-keys", required_argument, NULL, OPT_TPM_KEYS },
  { "rate", required_argument, NULL, OPT_RATE },
  { "first-id", required_argument, NULL, OPT_FIRST_ID },
  { NULL, 0, NULL, 0 },
};

static int apply_numeric(struct lg_opts *o, int id, const char *arg)
{
  switch (id) {
  case OPT_CONCURRENCY:
    return num_parse_long(arg, 1, MAX_CONCURRENCY, &o->concurrency);
  case OPT_DURATION: return parse_double(arg, 0.1, 86400, &o->duration_s);
  case OPT_COUNT: return num_parse_long(arg, 1, MAX_COUNT, &o->count);
  case OPT_IDS: return num_parse_long(arg, 1, MAX_COUNT, &o->ids);
  case OPT_TIMEOUT: return parse_double(arg, 0.1, 3600, &o->timeout_s);
  case OPT_MAX_POLLS: return num_parse_long(arg, 0, 1000, &o->max_polls);
  case OPT_MAX_ERRORS: return num_parse_long(arg, 1, MAX_COUNT, &o->max_errors);
  case OPT_REQ_PER_CONN:
    return num_parse_long(arg, 1, 1000000, &o->requests_per_conn);
  case OPT_THREADS: return num_parse_long(arg, 1, MAX_THREADS, &o->threads);
  case OPT_RATE: return parse_double(arg, 1, 1e6, &o->rate);
  case OPT_FIRST_ID: return num_parse_long(arg, 0, MAX_COUNT, &o->first_id);
  default: return -1;
  }
}

static int apply_option(struct lg_opts *o, int id, const char *arg)
{
  switch (id) {
  case OPT_MODE: o->mode = arg; return 0;
  case OPT_URL: o->url = arg; return 0;
  case OPT_CA: o->ca = arg; return 0;
  case OPT_DATA_DIR: o->data_dir = arg; return 0;
  case OPT_SCOPE: o->scope = arg; return valid_token(arg) ? 0 : -1;
  case OPT_PREFIX: o->prefix = arg; return valid_prefix(arg) ? 0 : -1;
  case OPT_KEYS_SEED:
    o->keys_seed = arg;
    return *arg && strlen(arg) <= 256 ? 0 : -1;
  case OPT_GROUP_KEY: o->group_key = arg; return 0;
  case OPT_CLIENT_CA: o->client_ca = arg; return 0;
  case OPT_CLIENT_CA_KEY: o->client_ca_key = arg; return 0;
  case OPT_CONN_STRING: o->connection_string = arg; return 0;
  case OPT_TPM_KEYS: o->tpm_keys = arg; return 0;
  case OPT_API_VERSION:
    o->api_version = arg;
    return valid_token(arg) ? 0 : -1;
  default: return apply_numeric(o, id, arg);
  }
}

static void set_defaults(struct lg_opts *o)
{
  memset(o, 0, sizeof *o);
  o->mode = "register";
  o->scope = "0ne00000001";
  o->prefix = "bench-dev-";
  o->ids = 100000;
  o->keys_seed = "provd-bench";
  o->api_version = "2019-03-31";
  o->timeout_s = 30;     /* the Node SDK's per-request timeout */
  o->max_polls = 20;
  o->max_errors = 10000;
  o->requests_per_conn = 1000;
  /* One engine per core: one client thread cannot keep up with a server
   * that has every core (a client handshake costs as much as a server's). */
  o->threads = sysconf(_SC_NPROCESSORS_ONLN);
  if (o->threads < 1 || o->threads > MAX_THREADS)
    o->threads = o->threads < 1 ? 1 : MAX_THREADS;
}

/* Fills what depends on other options; -1 with a message on stderr. */
static int finish_options(struct lg_opts *o, char *ca_buf, size_t ca_cap)
{
  bool enroll = strncmp(o->mode, "enroll", 6) == 0;
  if (!lg_mode_find(o->mode))
    return fprintf(stderr, "unknown --mode %s\n", o->mode), -1;
  if (!o->url || parse_url(o) != 0)
    return fprintf(stderr, "--url https://HOST:PORT is required\n"), -1;
  if (!o->ca && o->data_dir) {
    snprintf(ca_buf, ca_cap, "%s/tls/ca.pem", o->data_dir);
    o->ca = ca_buf;
  }
  if (!o->ca)
    return fprintf(stderr, "--ca FILE (or --data-dir) is required\n"), -1;
  if (enroll && o->first_id > 0)
    return fprintf(stderr, "--first-id is for the register and baseline "
                           "modes\n"), -1;
  if (enroll && (o->count == 0 || o->duration_s > 0))
    return fprintf(stderr, "--mode enroll needs --count N\n"), -1;
  if (o->count > 0 && o->duration_s > 0)
    return fprintf(stderr, "--duration and --count exclude each other\n"),
           -1;
  if (o->count == 0 && o->duration_s <= 0)
    o->duration_s = DEFAULT_DURATION_S;
  if (o->concurrency == 0)
    o->concurrency = enroll ? DEFAULT_ENROLL_CONCURRENCY
                            : DEFAULT_CONCURRENCY;
  if (o->count > 0 && o->concurrency > o->count)
    o->concurrency = o->count;
  return 0;
}

static int parse_options(int argc, char **argv, struct lg_opts *o,
                         char *ca_buf, size_t ca_cap)
{
  int id;
  set_defaults(o);
  while ((id = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
    if (id == OPT_HELP) {
      usage(stdout);
      exit(0);
    }
    if (id == '?' || apply_option(o, id, optarg) != 0) {
      if (id != '?')
        fprintf(stderr, "bad value for --%s: %s\n",
                long_opts[id - OPT_MODE].name, optarg);
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
    return -1;
  }
  return finish_options(o, ca_buf, ca_cap);
}

/* ---- report ---- */

static void print_errors(const struct lg_stats *s)
{
  printf("errors        %llu (", (unsigned long long)lg_stats_errors(s));
  for (int k = 0; k < LG_ERR__COUNT; k++)
    printf("%s%s %llu", k ? ", " : "", lg_err_kind_name(k),
           (unsigned long long)s->errors[k]);
  printf(")\n");
  if (s->errors[LG_ERR_HTTP]) {
    printf("http statuses");
    for (int st = 0; st < 600; st++)
      if (s->http_status[st])
        printf(" %d x%llu", st, (unsigned long long)s->http_status[st]);
    printf("\n");
  }
  for (size_t i = 0; i < s->n_samples; i++)
    printf("  e.g. %s\n", s->samples[i]);
}

/* A finished run, all threads together. */
struct lg_result {
  struct lg_stats stats;
  double elapsed_s, rate, cpu_user_s, cpu_sys_s;
  long units; /* global unit numbers claimed: 0 .. units - 1 */
  unsigned threads;
  bool aborted;
};

static void print_human(const struct lg_opts *o, struct lg_result *r)
{
  struct lg_stats *s = &r->stats;
  double cpu = r->cpu_user_s + r->cpu_sys_s;
  printf("== provd-loadgen %s ==\n", o->mode);
  printf("target        %s (ca %s)\n", o->url, o->ca);
  printf("concurrency   %ld on %u threads, %s %.1f s\n", o->concurrency,
         r->threads, o->count ? "count run," : "duration", r->elapsed_s);
  printf("ok            %llu  (%.1f/s)\n", (unsigned long long)s->ok,
         r->rate);
  print_errors(s);
  printf("cancelled     %llu (in flight at the end; not errors)\n",
         (unsigned long long)s->cancelled);
  if (o->rate > 0)
    printf("open loop     %.1f/s offered; %llu arrivals missed (no free "
           "slot)\n", o->rate, (unsigned long long)s->missed);
  if (s->http_status[429] + s->http_status[503])
    printf("refusals      %llu x 429, %llu x 503; %llu without Retry-After\n",
           (unsigned long long)s->http_status[429],
           (unsigned long long)s->http_status[503],
           (unsigned long long)s->refused_no_hint);
  if (r->units > 0 && strncmp(o->mode, "enroll", 6) != 0)
    printf("devices       %ld units from device %ld of %ld%s\n", r->units,
           o->first_id % o->ids, o->ids,
           o->first_id + r->units > o->ids ? " (wrapped: some registered "
                                             "again)"
                                           : "");
  printf("handshakes    %llu full, %llu resumed; %llu HTTP requests\n",
         (unsigned long long)(s->handshakes - s->resumed),
         (unsigned long long)s->resumed, (unsigned long long)s->requests);
  printf("latency ms    p50 %.2f  p90 %.2f  p99 %.2f  max %.2f%s\n",
         lg_stats_quantile_ms(s, 0.50), lg_stats_quantile_ms(s, 0.90),
         lg_stats_quantile_ms(s, 0.99), lg_stats_quantile_ms(s, 1.0),
         s->lat_truncated ? " (sample cap reached)" : "");
  printf("client cpu    %.2f s (user %.2f, sys %.2f) = %.3f ms per ok unit\n",
         cpu, r->cpu_user_s, r->cpu_sys_s,
         s->ok ? cpu * 1000.0 / (double)s->ok : 0.0);
  if (r->aborted)
    printf("ABORTED       --max-errors %ld reached\n", o->max_errors);
}

static void print_machine(const struct lg_opts *o, struct lg_result *r)
{
  struct lg_stats *s = &r->stats;
  printf("RESULT mode=%s ok=%llu errors=%llu rate=%.1f/s p50_ms=%.2f "
         "p99_ms=%.2f cpu_client_s=%.2f elapsed_s=%.2f cancelled=%llu "
         "handshakes=%llu resumed=%llu requests=%llu",
         o->mode, (unsigned long long)s->ok,
         (unsigned long long)lg_stats_errors(s), r->rate,
         lg_stats_quantile_ms(s, 0.50), lg_stats_quantile_ms(s, 0.99),
         r->cpu_user_s + r->cpu_sys_s, r->elapsed_s,
         (unsigned long long)s->cancelled, (unsigned long long)s->handshakes,
         (unsigned long long)s->resumed, (unsigned long long)s->requests);
  for (int k = 0; k < LG_ERR__COUNT; k++)
    printf(" err_%s=%llu", lg_err_kind_name(k),
           (unsigned long long)s->errors[k]);
  printf(" offered_rate=%.1f missed=%llu refused_429=%llu refused_503=%llu "
         "refused_no_hint=%llu first_id=%ld next_id=%ld",
         o->rate, (unsigned long long)s->missed,
         (unsigned long long)s->http_status[429],
         (unsigned long long)s->http_status[503],
         (unsigned long long)s->refused_no_hint, o->first_id,
         o->first_id + r->units);
  printf("%s\n", r->aborted ? " aborted=1" : "");
}

/* ---- the run: one engine per thread ---- */

/* Share n of total for part i of parts (the first total % parts get one
 * more). */
static long share_of(long total, unsigned parts, unsigned i)
{
  return total / (long)parts + ((unsigned long)total % parts > i ? 1 : 0);
}

static int setup_engine(const struct lg_opts *o, struct lg_engine *e,
                        struct lg_mode_ctx *ctx, struct lg_shared *sh,
                        unsigned index, unsigned n, char *err,
                        size_t err_len)
{
  e->mode = lg_mode_find(o->mode);
  e->mode_ctx = ctx;
  e->shared = sh;
  e->thread_index = index;
  e->n_threads = n;
  e->count = o->count ? share_of(o->count, n, index) : 0;
  e->unit_timeout_us = (int64_t)(o->timeout_s * 1e6);
  e->max_units_per_conn = (int)o->requests_per_conn;
  e->rate = o->rate / n;
  e->rng = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 8) ^
           (0x9E3779B97F4A7C15ULL * (index + 1));
  return lg_engine_init(e, o->host, o->port, o->ca,
                        (size_t)share_of(o->concurrency, n, index), err,
                        err_len);
}

static void *engine_thread(void *arg)
{
  lg_engine_run(arg);
  return NULL;
}

static double tv_seconds(const struct timeval *tv)
{
  return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* Runs the engines (engine 0 on this thread) and sums what they saw. */
static void run_engines(struct lg_engine *engines, unsigned n,
                        struct lg_shared *sh, struct lg_result *r)
{
  pthread_t tids[MAX_THREADS];
  unsigned started = 1;
  struct rusage ru0, ru1;
  int64_t end_us = 0;
  getrusage(RUSAGE_SELF, &ru0); /* all threads of the process */
  sh->start_us = lg_now_us();
  for (unsigned t = 1; t < n; t++, started++)
    if (pthread_create(&tids[t], NULL, engine_thread, &engines[t]) != 0) {
      fprintf(stderr, "provd-loadgen: pthread_create failed; running "
              "with %u threads\n", started);
      break;
    }
  lg_engine_run(&engines[0]);
  for (unsigned t = 1; t < started; t++)
    pthread_join(tids[t], NULL);
  getrusage(RUSAGE_SELF, &ru1);
  for (unsigned t = 0; t < started; t++) {
    lg_stats_merge(&r->stats, &engines[t].stats);
    if (engines[t].end_us > end_us)
      end_us = engines[t].end_us;
    /* engine t claimed t, t + n, ...: its last is (next_unit - 1) n + t */
    long last = engines[t].next_unit > 0
                    ? (engines[t].next_unit - 1) * (long)n + (long)t
                    : -1;
    if (last + 1 > r->units)
      r->units = last + 1;
  }
  r->threads = started;
  r->aborted = atomic_load(&sh->abort);
  r->elapsed_s = (double)(end_us - sh->start_us) / 1e6;
  r->rate = r->elapsed_s > 0 ? (double)r->stats.ok / r->elapsed_s : 0.0;
  r->cpu_user_s = tv_seconds(&ru1.ru_utime) - tv_seconds(&ru0.ru_utime);
  r->cpu_sys_s = tv_seconds(&ru1.ru_stime) - tv_seconds(&ru0.ru_stime);
}

static void init_shared(const struct lg_opts *o, struct lg_shared *sh)
{
  memset(sh, 0, sizeof *sh);
  sh->duration_s = o->duration_s;
  sh->total_count = o->count;
  sh->max_errors = (uint64_t)o->max_errors;
  /* Long runs say how far they are: every 10 %. */
  sh->progress_step = o->count >= 1000 ? (uint64_t)o->count / 10 : 0;
  atomic_init(&sh->finished, 0);
  atomic_init(&sh->ok, 0);
  atomic_init(&sh->errors, 0);
  atomic_init(&sh->next_progress, sh->progress_step);
  atomic_init(&sh->abort, false);
}

static int run(const struct lg_opts *o)
{
  struct lg_engine engines[MAX_THREADS];
  struct lg_shared shared;
  struct lg_result result;
  unsigned n = (unsigned)(o->threads < o->concurrency ? o->threads
                                                      : o->concurrency);
  unsigned ready = 0;
  char err[512];
  int rc = 1;
  struct lg_mode_ctx *ctx = lg_mode_ctx_new(o, err, sizeof err);
  memset(engines, 0, sizeof engines);
  memset(&result, 0, sizeof result);
  init_shared(o, &shared);
  if (!ctx)
    goto out;
  for (; ready < n; ready++)
    if (setup_engine(o, &engines[ready], ctx, &shared, ready, n, err,
                     sizeof err) != 0) {
      ready++; /* free it too */
      goto out;
    }
  run_engines(engines, n, &shared, &result);
  print_human(o, &result);
  print_machine(o, &result);
  fflush(stdout);
  rc = lg_stats_errors(&result.stats) == 0 && result.stats.ok > 0 ? 0 : 3;
out:
  if (rc == 1)
    fprintf(stderr, "provd-loadgen: %s\n", err);
  for (unsigned t = 0; t < ready; t++)
    lg_engine_free(&engines[t]);
  lg_stats_free(&result.stats);
  lg_mode_ctx_free(ctx);
  return rc;
}

int main(int argc, char **argv)
{
  struct lg_opts o;
  char ca_buf[4096];
  signal(SIGPIPE, SIG_IGN); /* a peer reset must be an error, not a death */
  if (parse_options(argc, argv, &o, ca_buf, sizeof ca_buf) != 0)
    return 2;
  return run(&o);
}
