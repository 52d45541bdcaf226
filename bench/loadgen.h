/* provd-loadgen internals: one process, N non-blocking OpenSSL client
 * connections multiplexed on epoll.  A connection carries "units" (one
 * device registration, one baseline GET, one enrollment PUT); the mode
 * decides what each unit sends and when it is done. */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#define LG_MAX_ID 128         /* registration id, operation id */
#define LG_MAX_AUTH 512       /* a SharedAccessSignature header value */
#define LG_OUT_CAP 8192       /* one request (a 10-item bulk ~3 KiB) */
#define LG_IN_CAP (64 * 1024) /* one response; larger is a protocol error */
#define LG_MAX_ERROR_SAMPLES 8
#define LG_MAX_SAMPLES (1u << 22) /* latency samples kept (16 MiB) */

/* ---- HTTP response parsing (lg_http.c) ---- */

struct lg_resp {
  int status;
  size_t body_off;   /* offset of the body in the buffer */
  size_t body_len;
  bool conn_close;   /* "Connection: close" */
  bool until_close;  /* no Content-Length: the body ends at EOF */
  bool retry_after;  /* a Retry-After header with a value was present */
};

/* 1: a complete response is in buf; 0: need more bytes; -1: malformed or
 * unsupported (chunked).  With at_eof, a body without Content-Length ends
 * at len. */
int lg_http_parse(const char *buf, size_t len, bool at_eof,
                  struct lg_resp *out);

/* ---- statistics (lg_stats.c) ---- */

enum lg_err_kind {
  LG_ERR_CONNECT,   /* socket/connect failed or refused */
  LG_ERR_TLS,       /* handshake or certificate verification failed */
  LG_ERR_HTTP,      /* unexpected HTTP status (per-status counts kept) */
  LG_ERR_TIMEOUT,   /* the unit did not finish within --timeout */
  LG_ERR_CLOSED,    /* the server closed the connection mid-unit */
  LG_ERR_PROTOCOL,  /* unparsable response or body */
  LG_ERR_FAILED,    /* operation status "failed"/unknown, or polls exhausted */
  LG_ERR__COUNT
};

struct lg_stats {
  uint64_t ok;
  uint64_t errors[LG_ERR__COUNT];
  uint64_t http_status[600];
  uint64_t resumed;     /* handshakes that resumed a session (must stay 0) */
  uint64_t handshakes;
  uint64_t requests;    /* HTTP requests sent */
  uint64_t cancelled;   /* in flight when the run ended: not errors */
  /* --rate runs: arrivals due while every connection slot was busy, so
   * never started (the client's limit, not the server's answer). */
  uint64_t missed;
  uint64_t refused_no_hint; /* 429/503 answers without a Retry-After */
  uint32_t *lat_us;     /* latency samples of successful units */
  size_t n_lat, cap_lat;
  bool lat_truncated;   /* more samples than LG_MAX_SAMPLES */
  bool lat_sorted;
  char samples[LG_MAX_ERROR_SAMPLES][160]; /* first text per kind / HTTP status */
  size_t n_samples;
};

void lg_stats_init(struct lg_stats *s);
void lg_stats_free(struct lg_stats *s);
void lg_stats_ok(struct lg_stats *s, int64_t latency_us);
/* Adds src's counters, samples and error texts to dst. */
void lg_stats_merge(struct lg_stats *dst, const struct lg_stats *src);
void lg_stats_error(struct lg_stats *s, enum lg_err_kind kind, int status,
                    const char *detail);
uint64_t lg_stats_errors(const struct lg_stats *s);
const char *lg_err_kind_name(enum lg_err_kind kind);
/* Latency quantile in ms (q in [0,1]); sorts the samples once. */
double lg_stats_quantile_ms(struct lg_stats *s, double q);

/* ---- the engine (lg_engine.c) ---- */

enum lg_action {
  LG_SEND,        /* the mode put the next request of the unit in c->out */
  LG_UNIT_OK,     /* unit finished successfully */
  LG_UNIT_ERROR   /* unit failed; kind/status/detail set */
};

struct lg_conn;
struct lg_engine;

struct lg_verdict {
  enum lg_action action;
  enum lg_err_kind kind;
  int status;
  char detail[160];
};

struct lg_mode {
  const char *name;
  /* What one unit is, for the progress lines ("bulk operations": an
   * enroll-bulk unit carries 10 enrollments, its rate is not theirs). */
  const char *unit;
  /* Units share a keep-alive connection (enroll) instead of one new
   * connection + full handshake each (register, baseline). */
  bool keep_alive;
  /* Builds the unit's first request into c->out.  0 ok, -1 on error
   * (detail in v). */
  int (*first_request)(struct lg_engine *e, struct lg_conn *c,
                       struct lg_verdict *v);
  /* Judges a complete response; may build the next request. */
  void (*on_response)(struct lg_engine *e, struct lg_conn *c,
                      const char *buf, const struct lg_resp *r,
                      struct lg_verdict *v);
  /* Frames the server's answer; NULL: HTTP (lg_http_parse). */
  int (*parse)(const char *buf, size_t len, bool at_eof, struct lg_resp *out);
};

/* ---- the DPS MQTT device flow (lg_mqtt.c) ---- */

/* c->out = CONNECT (c->reg_id, c->auth as password unless "") +
 * SUBSCRIBE + PUBLISH register, all QoS 0.  0 ok, -1 too large. */
int lg_mqtt_register(struct lg_conn *c, const char *scope,
                     const char *api_version);
/* c->out = PUBLISH poll of operation_id. */
int lg_mqtt_poll(struct lg_conn *c, const char *operation_id);
/* Like lg_http_parse: the answer PUBLISH (status from its topic, body
 * its payload), or a refused CONNACK as status 400/401. */
int lg_mqtt_parse(const char *buf, size_t len, bool at_eof,
                  struct lg_resp *out);

/* A device's TLS client identity (lg_x509.c). */
struct lg_identity {
  X509 *cert;
  EVP_PKEY *key;
};

struct lg_conn {
  int fd;
  SSL *ssl;
  int state;              /* enum conn_state in lg_engine.c */
  bool in_use;
  uint32_t gen;           /* bumped per descriptor: drops stale events */
  long unit;              /* index of the unit in progress, -1 none */
  int64_t unit_start_us;
  int64_t unit_deadline_us;
  int polls;              /* operation GETs sent in this unit */
  int units_on_conn;
  char op_id[LG_MAX_ID];
  char reg_id[LG_MAX_ID];
  char auth[LG_MAX_AUTH];  /* Authorization value reused by follow-ups;
                              "" = none (X.509 devices) */
  const struct lg_identity *identity; /* client certificate, or NULL */
  char out[LG_OUT_CAP];
  size_t out_len, out_off;
  char *in;               /* LG_IN_CAP + 1 bytes */
  size_t in_len;
};

struct lg_target {
  char host[256];         /* as in the URL: name or address literal */
  int port;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  bool host_is_ip;
};

/* What the engines of one run (one per thread) share.  Plain fields are
 * written before the threads start and only read afterwards. */
struct lg_shared {
  int64_t start_us;
  double duration_s;        /* 0: until the counts are done */
  long total_count;         /* all threads together; 0 with a duration */
  uint64_t max_errors;      /* stop the run when reached */
  uint64_t progress_step;   /* count runs: a line every step units, 0 off */
  _Atomic uint64_t finished, ok, errors, next_progress;
  _Atomic bool abort;
};

struct lg_engine {
  const struct lg_mode *mode;
  struct lg_mode_ctx *mode_ctx; /* borrowed, read-only while running */
  struct lg_shared *shared;     /* borrowed */
  unsigned thread_index, n_threads;
  struct lg_target target;
  SSL_CTX *ssl_ctx;
  int epfd;
  struct lg_conn *conns;
  size_t n_conns;
  long count;              /* this engine's units, 0: until duration */
  long next_unit;          /* local; the global unit is local * n + index */
  int64_t unit_timeout_us;
  int max_units_per_conn;  /* keep-alive modes */
  uint64_t rng;            /* Request-Id generator (not security) */
  struct lg_stats stats;
  int64_t end_us;
  double rate;             /* this engine's arrivals per second; 0: closed */
  long arrivals;           /* arrivals handled so far (started or missed) */
};

int64_t lg_now_us(void);
/* Resolves host:port, builds the client SSL_CTX (CA, verification, no
 * resumption).  0 ok, -1 with a message in err. */
int lg_engine_init(struct lg_engine *e, const char *host, int port,
                   const char *ca_file, size_t concurrency, char *err,
                   size_t err_len);
/* Runs until count units finished or the shared duration elapsed (then
 * in-flight units are cancelled), or the shared abort flag is set. */
void lg_engine_run(struct lg_engine *e);
void lg_engine_free(struct lg_engine *e);

/* Appends to c->out; -1 when it would not fit. */
int lg_conn_printf(struct lg_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- options and modes (loadgen.c, lg_modes.c) ---- */

struct lg_opts {
  const char *mode;           /* register | baseline | enroll */
  const char *url;
  char host[256];
  int port;
  const char *ca;
  const char *data_dir;
  long concurrency;
  double duration_s;
  long count;
  const char *scope;
  const char *prefix;
  long ids;
  const char *keys_seed;
  const char *group_key;
  const char *client_ca;      /* X.509 devices: their CA certificate ... */
  const char *client_ca_key;  /* ... and its key (PEM files) */
  const char *connection_string;
  const char *api_version;    /* device API */
  double timeout_s;
  long max_polls;
  long max_errors;
  long requests_per_conn;     /* enroll keep-alive connections */
  long threads;               /* engines, one per thread */
  double rate;                /* units started per second (open loop); 0:
                                 a new unit whenever one ends */
  const char *tpm_keys;       /* PEM: EK + SRK of the software TPM */
  long first_id;              /* unit u is device (first_id + u) % ids */
};

/* Mode state built from the options; lives as long as the run. */
struct lg_mode_ctx;

/* n identities, CN prefix0..prefix<n-1>, signed by the CA (PEM files).
 * NULL + message on error. */
struct lg_identity *lg_identities_new(const char *ca_file,
                                      const char *ca_key_file,
                                      const char *prefix, long n, char *err,
                                      size_t err_len);
void lg_identities_free(struct lg_identity *ids, long n);

/* The mode named o->mode, and its context (NULL + message on error). */
const struct lg_mode *lg_mode_find(const char *name);
struct lg_mode_ctx *lg_mode_ctx_new(const struct lg_opts *o, char *err,
                                    size_t err_len);
void lg_mode_ctx_free(struct lg_mode_ctx *m);

#endif
