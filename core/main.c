/* provd: the daemon.  Loads the YAML config and the plugins it declares,
 * prepares the data dir, opens the store and serves the DPS device and
 * service APIs over HTTPS until SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api/api.h"
#include "config/config.h"
#include "engine/engine.h"
#include "engine/hubs.h"
#include "engine/hub_health.h"
#include "notify/dispatch.h"
#include "net/http.h"
#include "net/wire_error.h"
#include "plugin/loader.h"
#include "restore.h"
#include "store/store.h"
#include "tls/issuer.h"
#include "tls/pki.h"
#include "tls/server_ctx.h"
#include "util/allocator.h"
#include "util/b64.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/num.h"
#include "util/service_notify.h"
#include "util/timefmt.h"

#define DEFAULT_CONFIG "configs/provd.yaml"
#define SHUTDOWN_GRACE_MS 10000

struct options {
  const char *config_file;
  const char *listen;
  const char *mqtt_listen;
  const char *data_dir;
  const char *id_scope;
  const char *log_level;
  int workers;
  int check_config;
  int print_connection_string;
  int show_connection_string;
};

static void usage(FILE *out)
{
  fprintf(out,
          "usage: provd [-c FILE] [--listen HOST:PORT] [--mqtt-listen HOST:PORT]\n"
          "             [--data-dir DIR] [--id-scope SCOPE] [--workers N]\n"
          "             [--log-level LEVEL] [--check-config]\n"
          "             [--print-connection-string] [--show-connection-string]\n"
          "             [--version] [--help]\n"
          "       provd restore FILE --data-dir DIR [--passphrase-file FILE]\n"
          "             [--force]\n"
          "\n"
          "Self-hosted device provisioning service, wire-compatible with Azure\n"
          "IoT Hub DPS (device and service REST APIs over HTTPS).\n"
          "\n"
          "  -c, --config FILE       YAML config (default " DEFAULT_CONFIG
          " if it exists,\n"
          "                          else built-in defaults)\n"
          "      --listen HOST:PORT  HTTPS listener (overrides listen.https)\n"
          "      --mqtt-listen HOST:PORT\n"
          "                          DPS MQTT device endpoint (TLS), e.g. 127.0.0.1:8883\n"
          "      --data-dir DIR      data directory (overrides data_dir)\n"
          "      --id-scope SCOPE    ID scope devices use (overrides id_scope)\n"
          "      --workers N         event-loop threads (default: number of cores)\n"
          "      --log-level LEVEL   error, warn, info or debug\n"
          "      --check-config      validate the config and plugins, print\n"
          "                          FILE:LINE:COL: message per problem, exit 0 or 2\n"
          "      --print-connection-string\n"
          "                          print the service connection string (the\n"
          "                          owner's key) of the data dir and exit; the\n"
          "                          start-up banner says only where it is\n"
          "      --show-connection-string\n"
          "                          print it in the start-up banner too (make run\n"
          "                          does, for the developer at the terminal)\n"
          "      --version           print the version and exit\n"
          "  -h, --help              this text\n"
          "\n"
          "Command-line values override the config file.  SIGTERM or SIGINT stop\n"
          "accepting, finish in-flight requests and answer those already\n"
          "received (up to 10 s), flush the store and exit 0.\n"
          "SIGHUP, without dropping connections, re-reads the config file and\n"
          "applies log_level, service_policies (and the connection string file's\n"
          "owner key), tls (certificate and key files are read again; new\n"
          "connections use them) and registration.retry_after, and reloads the\n"
          "linked hubs from the store.  A config that does not load changes\n"
          "nothing.  Other changed sections are named in a warning and need a\n"
          "restart.  The config's hubs: seed the store on first start only;\n"
          "afterwards use `provctl hub`.\n"
          "Under a service manager that sets NOTIFY_SOCKET (systemd's\n"
          "Type=notify) provd sends READY=1 once its listeners accept,\n"
          "RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1, and WATCHDOG=1\n"
          "at half of WATCHDOG_USEC while every worker loop turns.\n"
          "\n"
          "restore writes a backup made by `provctl backup` into a data dir\n"
          "(`provd restore --help`).\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"listen", required_argument, NULL, 'l'},
      {"mqtt-listen", required_argument, NULL, 'm'},
      {"data-dir", required_argument, NULL, 'd'},
      {"id-scope", required_argument, NULL, 's'},
      {"workers", required_argument, NULL, 'w'},
      {"log-level", required_argument, NULL, 'L'},
      {"check-config", no_argument, NULL, 'k'},
      {"print-connection-string", no_argument, NULL, 'P'},
      {"show-connection-string", no_argument, NULL, 'S'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o->config_file = optarg; break;
    case 'l': o->listen = optarg; break;
    case 'm': o->mqtt_listen = optarg; break;
    case 'd': o->data_dir = optarg; break;
    case 's': o->id_scope = optarg; break;
    case 'L': o->log_level = optarg; break;
    case 'k': o->check_config = 1; break;
    case 'P': o->print_connection_string = 1; break;
    case 'S': o->show_connection_string = 1; break;
    case 'w': {
      long n;
      if (num_parse_long(optarg, 1, 256, &n) != 0) {
        fprintf(stderr, "provd: --workers takes a number from 1 to 256\n");
        return 2;
      }
      o->workers = (int)n;
      break;
    }
    case 'V': printf("provd %s\n", PROVD_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "provd: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  return -1; /* go on */
}

static char *replace_str(char *old, const char *value)
{
  free(old);
  return strdup(value);
}

/* Command-line values win over the file. */
static int apply_overrides(const struct options *o, struct provd_config *cfg)
{
  char msg[256];
  if (o->listen && config_parse_listen(o->listen, &cfg->https, msg,
                                       sizeof(msg)) != 0) {
    fprintf(stderr, "provd: --listen %s: %s\n", o->listen, msg);
    return -1;
  }
  if (o->mqtt_listen) {
    if (config_parse_listen(o->mqtt_listen, &cfg->mqtt, msg, sizeof(msg))) {
      fprintf(stderr, "provd: --mqtt-listen %s: %s\n", o->mqtt_listen, msg);
      return -1;
    }
    cfg->has_mqtt = 1;
  }
  if (o->data_dir)
    cfg->data_dir = replace_str(cfg->data_dir, o->data_dir);
  if (o->id_scope)
    cfg->id_scope = replace_str(cfg->id_scope, o->id_scope);
  if (o->workers)
    cfg->workers = o->workers;
  if (o->log_level) {
    int level = log_level_parse(o->log_level);
    if (level < 0) {
      fprintf(stderr, "provd: --log-level must be error, warn, info or debug\n");
      return -1;
    }
    cfg->log_level = level;
  }
  return 0;
}

static int load_config(const struct options *o, struct provd_config *cfg)
{
  const char *file = o->config_file;
  if (!file && access(DEFAULT_CONFIG, R_OK) == 0)
    file = DEFAULT_CONFIG;
  if (!file) {
    config_defaults(cfg);
    return 0;
  }
  struct diag d = {0};
  int rc = config_load(file, cfg, &d);
  diag_print(&d);
  diag_free(&d);
  return rc;
}

/* Writes the data dir's connection string (the admin key) to out; 0, or
 * -1 with the reason in err. */
static int write_connection_string(FILE *out, const char *path,
                                   struct provd_err *err)
{
  struct connstr cs;
  if (pki_read_connection_string(path, &cs, err) != 0)
    return -1;
  fprintf(out, "HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s",
          cs.host, cs.key_name, cs.key);
  OPENSSL_cleanse(&cs, sizeof(cs));
  return 0;
}

/* The admin key goes to stdout only when asked for: logs collected from
 * a service's stdout keep no secret. */
static int print_connection_string(const struct provd_config *cfg)
{
  struct pki_paths pki;
  struct provd_err err = {0};
  if (pki_init_data_dir(cfg->data_dir, cfg->tls_cert, cfg->tls_key, &pki,
                        &err) != 0 ||
      write_connection_string(stdout, pki.conn_string, &err) != 0) {
    fprintf(stderr, "provd: %s\n", err.msg);
    return 1;
  }
  printf("\n");
  return 0;
}

static int check_config_only(const struct provd_config *cfg)
{
  struct plugin_set set = {0};
  struct diag d = {0};
  int rc = plugins_load(cfg, &set, &d);
  diag_print(&d);
  diag_free(&d);
  struct issuer_set *issuers = NULL;
  struct provd_err err = {0};
  if (rc == 0 && issuers_load(cfg, &issuers, &err) != PROVD_OK) {
    fprintf(stderr, "%s\n", err.msg);
    rc = -1;
  }
  issuers_free(issuers);
  if (rc == 0) {
    printf("%s: configuration OK; plugins:", cfg->file ? cfg->file
                                                       : "(defaults)");
    for (size_t i = 0; i < set.n; i++)
      printf(" %s/%s", plugin_kind_name(set.items[i]->kind),
             set.items[i]->id);
    printf("\n");
  }
  plugins_free(&set);
  return rc == 0 ? 0 : 2;
}

static const char *display_host(const struct cfg_listen *l)
{
  if (strcmp(l->host, "127.0.0.1") == 0 || strcmp(l->host, "0.0.0.0") == 0 ||
      strcmp(l->host, "::1") == 0 || strcmp(l->host, "::") == 0)
    return "localhost"; /* the generated certificate's name */
  return l->host;
}

/* show_key: the connection string itself, not only its file. */
static void print_banner(const struct provd_config *cfg,
                         const struct pki_paths *pki, int port,
                         int mqtt_port, int console_port, int workers,
                         bool show_key)
{
  const char *host = display_host(&cfg->https);
  const char *console_host =
      console_port > 0 ? display_host(&cfg->console) : host;
  if (console_port <= 0)
    console_port = port;
  const char *ca = pki->ca[0] ? pki->ca : "(operator certificate: devices "
                                          "trust its issuer)";
  printf("provd %s ready (%d workers)\n"
         "  ID scope:          %s\n"
         "  device endpoint:   https://%s:%d  (DPS device API)\n"
         "  service endpoint:  https://%s:%d  (DPS service API)\n"
         "  console:           https://%s:%d/console/  (sign in with the "
         "connection string)\n"
         "  CA file:           %s\n"
         "  connection string: ",
         PROVD_VERSION, workers, cfg->id_scope, host, port, host, port,
         console_host, console_port, ca);
  struct provd_err err = {0};
  if (show_key && write_connection_string(stdout, pki->conn_string, &err) == 0)
    printf("  (file %s)\n", pki->conn_string);
  else
    printf("in %s  (the owner's key; provd --print-connection-string)\n",
           pki->conn_string);
  if (mqtt_port > 0)
    printf("  MQTT endpoint:     mqtts://%s:%d  (DPS device API over MQTT)\n",
           display_host(&cfg->mqtt), mqtt_port);
  if (pki->ca[0])
    printf("  try:               curl --cacert %s https://%s:%d/healthz\n",
           pki->ca, host, port);
  fflush(stdout);
}

/* Seeds the store's hubs from the config on first start, then gives the
 * engine the stored ones (they may have changed at run time since).  On
 * the main thread, before the listeners exist. */
static int load_hubs(struct store *st, const struct provd_config *cfg,
                     struct engine *engine, struct provd_err *err)
{
  struct store_session *s = store_session_open(st, err);
  if (!s)
    return -1;
  int rc = hubs_seed(s, cfg, err);
  if (rc == PROVD_OK)
    rc = hubs_reload(s, engine, err);
  store_session_close(s);
  return rc == PROVD_OK ? 0 : -1;
}

struct daemon {
  struct provd_config cfg;
  struct plugin_set plugins;
  struct store *store;
  struct engine *engine;
  struct issuer_set *issuers;
  struct dispatcher *dispatcher;
  struct hub_health *hub_health;
  struct api_ctx api;
  struct http_server *http;
  struct http_server *console_http; /* listen.console, or NULL */
  struct mqtt_server *mqtt;
  SSL_CTX *ssl;
  struct tls_libs *tls_libs; /* one per worker; freed after every SSL_CTX */
  struct pki_paths pki;
  /* TLS contexts replaced by SIGHUP: a worker may be accepting with one;
   * freed at exit (one small context per reload). */
  SSL_CTX **retired_ssl;
  size_t n_retired_ssl;
  bool show_connection_string; /* --show-connection-string */
};

/* A listener-wide limit as each worker's share; 0 stays 0 (default). */
static size_t per_worker(int limit, int workers)
{
  return limit > 0 ? ((size_t)limit + (size_t)workers - 1) / (size_t)workers
                   : 0;
}

static int start_daemon(struct daemon *dm, struct provd_err *err)
{
  struct provd_config *cfg = &dm->cfg;
  if (pki_init_data_dir(cfg->data_dir, cfg->tls_cert, cfg->tls_key, &dm->pki,
                        err) != 0)
    return -1;
  struct diag d = {0};
  int rc = plugins_load(cfg, &dm->plugins, &d);
  diag_print(&d);
  diag_free(&d);
  if (rc != 0) {
    perr_set(err, "CONFIG", "plugins could not be loaded");
    return -2;
  }
  if (plugins_start(&dm->plugins, err) != PROVD_OK)
    return -1;
  struct plugin_instance *storage =
      plugins_nth(&dm->plugins, PROVD_KIND_STORAGE, 0);
  int workers = cfg->workers > 0 ? cfg->workers
                                 : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (workers < 1)
    workers = 1;
  /* As many store readers as event loops: more threads than cores only
   * add context switches (measured with bench/). */
  struct store_opts so = {.readers = workers, .queue_max = 8192,
                          .batch_max = 512,
                          .commit_window_us = cfg->commit_window_ms * 1000L};
  if (!storage || store_open(storage, &so, &dm->store, err) != PROVD_OK)
    return -1;
  wire_error_set_retry_spread(cfg->retry_after_max_s);
  if (engine_new(cfg, dm->store, &dm->plugins, &dm->engine, err) != PROVD_OK)
    return -1;
  if (load_hubs(dm->store, cfg, dm->engine, err) != 0)
    return -1;
  if (issuers_load(cfg, &dm->issuers, err) != PROVD_OK)
    return -1;
  engine_set_issuers(dm->engine, dm->issuers);
  if (dispatcher_start(&cfg->events, dm->store, &dm->plugins,
                       &dm->dispatcher, err) != PROVD_OK)
    return -1;
  if (hub_health_start(dm->store, dm->engine, &dm->plugins,
                       HUB_HEALTH_INTERVAL_MS, &dm->hub_health,
                       err) != PROVD_OK)
    return -1;
  dm->api.cfg = cfg;
  dm->api.store = dm->store;
  dm->api.engine = dm->engine;
  if (api_policies_load(&dm->api, dm->pki.conn_string, cfg, err) != 0)
    return -1;
  dm->tls_libs = tls_libs_new(workers, err);
  if (!dm->tls_libs)
    return -1;
  log_info("provd", "memory allocator: %s", allocator_describe());
  log_info("provd", "TLS: %d per-thread OpenSSL library contexts on "
           "provd-lean (docs/internals/http.md)",
           tls_libs_lean(dm->tls_libs));
  dm->ssl = tls_server_ctx_new(dm->pki.cert, dm->pki.key, dm->tls_libs, err);
  if (!dm->ssl)
    return -1;
  struct http_server_opts ho = {
      .host = cfg->https.host, .port = cfg->https.port, .workers = workers,
      .ssl = dm->ssl, .max_body_bytes = cfg->max_body_bytes,
      .max_connections = per_worker(cfg->max_connections, workers),
      .max_handshakes = per_worker(cfg->max_handshakes, workers),
      .handshake_timeout_s = cfg->handshake_timeout_s,
      .max_connections_per_source = (size_t)cfg->max_connections_per_source,
      .handler = api_handle, .ud = &dm->api};
  struct http_protocol mqtt_listener;
  if (cfg->has_mqtt) {
    struct mqtt_server_opts mo = {
        .ssl = dm->ssl, .workers = workers,
        .max_packet_bytes = cfg->max_body_bytes + MQTT_PUBLISH_OVERHEAD,
        .max_connections = per_worker(cfg->max_connections, workers),
        .max_handshakes = per_worker(cfg->max_handshakes, workers),
        .max_connections_per_source =
            (size_t)cfg->max_connections_per_source,
        .handlers = device_mqtt_handlers(), .ud = &dm->api};
    if (mqtt_server_new(&mo, &dm->mqtt, err) != 0)
      return -1;
    mqtt_listener = mqtt_server_protocol(dm->mqtt, cfg->mqtt.host,
                                         cfg->mqtt.port);
    ho.protocols = &mqtt_listener;
    ho.n_protocols = 1;
  }
  if (http_server_start(&ho, &dm->http, err) != 0)
    return -1;
  if (cfg->has_console) {
    struct http_server_opts co = {
        .host = cfg->console.host, .port = cfg->console.port, .workers = 1,
        .ssl = dm->ssl, .max_body_bytes = cfg->max_body_bytes,
        .handler = api_handle_console_listener, .ud = &dm->api};
    if (http_server_start(&co, &dm->console_http, err) != 0)
      return -1;
  }
  atomic_store(&dm->api.ready, true);
  print_banner(cfg, &dm->pki, http_server_port(dm->http),
               dm->mqtt ? http_server_protocol_port(dm->http, 0) : 0,
               dm->console_http ? http_server_port(dm->console_http) : 0,
               workers, dm->show_connection_string);
  log_info("provd", "serving https on %s:%d id_scope=%s data_dir=%s",
           cfg->https.host, http_server_port(dm->http), cfg->id_scope,
           cfg->data_dir);
  if (dm->mqtt)
    log_info("provd", "serving mqtt on %s:%d", cfg->mqtt.host,
             http_server_protocol_port(dm->http, 0));
  return 0;
}

static void stop_daemon(struct daemon *dm)
{
  atomic_store(&dm->api.ready, false);
  if (dm->console_http)
    http_server_stop(dm->console_http, SHUTDOWN_GRACE_MS);
  if (dm->http)
    http_server_stop(dm->http, SHUTDOWN_GRACE_MS);
  mqtt_server_free(dm->mqtt); /* its connections went with the workers */
  /* Before the store: its last cursors go through the writer. */
  hub_health_stop(dm->hub_health);
  dm->hub_health = NULL;
  dispatcher_stop(dm->dispatcher);
  dm->dispatcher = NULL;
  if (dm->store)
    store_close(dm->store); /* runs every queued write first */
  engine_free(dm->engine);
  issuers_free(dm->issuers);
  plugins_stop(&dm->plugins);
  plugins_free(&dm->plugins);
  if (dm->ssl)
    SSL_CTX_free(dm->ssl);
  for (size_t i = 0; i < dm->n_retired_ssl; i++)
    SSL_CTX_free(dm->retired_ssl[i]);
  free(dm->retired_ssl);
  tls_libs_free(dm->tls_libs); /* after the contexts and the engine's jobs */
  api_policies_clear(&dm->api);
}

static void reload_hubs_on_store(struct store_session *s, void *ud)
{
  struct provd_err err = {0};
  if (hubs_reload(s, ud, &err) != PROVD_OK)
    log_error("provd", "SIGHUP: linked hubs not reloaded: %s", err.msg);
  else
    log_info("provd", "SIGHUP: linked hubs reloaded from the store");
}

/* New connections handshake with the certificate and key the config
 * names now (rotated files are read again). */
static void reload_tls(struct daemon *dm, const struct provd_config *fresh)
{
  struct pki_paths pki;
  struct provd_err err = {0};
  SSL_CTX **slot = realloc(dm->retired_ssl,
                           (dm->n_retired_ssl + 1) * sizeof(*slot));
  if (!slot) {
    log_error("provd", "SIGHUP: tls not reloaded: out of memory");
    return;
  }
  dm->retired_ssl = slot;
  SSL_CTX *ctx = NULL;
  if (pki_init_data_dir(dm->cfg.data_dir, fresh->tls_cert, fresh->tls_key,
                        &pki, &err) == 0)
    ctx = tls_server_ctx_new(pki.cert, pki.key, dm->tls_libs, &err);
  if (!ctx) {
    log_error("provd", "SIGHUP: tls not reloaded, connections keep the "
                       "running certificate: %s", err.msg);
    return;
  }
  http_server_set_ssl(dm->http, ctx);
  if (dm->console_http)
    http_server_set_ssl(dm->console_http, ctx);
  if (dm->mqtt)
    mqtt_server_set_ssl(dm->mqtt, ctx);
  dm->retired_ssl[dm->n_retired_ssl++] = dm->ssl;
  dm->ssl = ctx;
  log_info("provd", "SIGHUP: tls reloaded: new connections use %s", pki.cert);
}

/* Warns about what a reload does not apply. */
static void report_restart_needed(const struct provd_config *running,
                                  const struct provd_config *fresh)
{
  static const char *const applied[] = {"log_level", "service_policies",
                                        "tls", "registration", "hubs",
                                        NULL};
  char changed[512];
  size_t n = config_changed_sections(running, fresh, applied, changed,
                                     sizeof(changed));
  const char *a = running->allocation_policy, *b = fresh->allocation_policy;
  if (a != b && (!a || !b || strcmp(a, b) != 0)) {
    size_t used = strlen(changed);
    snprintf(changed + used, sizeof(changed) - used, "%s%s",
             n++ ? ", " : "", "registration.allocation_policy");
  }
  if (n)
    log_warn("provd", "SIGHUP: changed in the config but not applied until "
                      "a restart: %s", changed);
  if (config_section_changed(running, fresh, "hubs"))
    log_warn("provd", "SIGHUP: hubs: in the config seeds the store on "
                      "first start only; change linked hubs with `provctl "
                      "hub` (not applied)");
}

/* SIGHUP: what can change safely while serving (see usage()). */
static void reload(const struct options *opts, struct daemon *dm)
{
  struct provd_config fresh = {0};
  if (load_config(opts, &fresh) != 0 || apply_overrides(opts, &fresh) != 0) {
    log_error("provd", "SIGHUP: the config does not load; nothing changed");
    config_free(&fresh);
    return;
  }
  log_set_level(fresh.log_level);
  struct provd_err err = {0};
  if (api_policies_load(&dm->api, dm->pki.conn_string, &fresh, &err) != 0)
    log_error("provd", "SIGHUP: service policies not reloaded, the running "
                       "ones stay: %s", err.msg);
  reload_tls(dm, &fresh);
  engine_set_retry_after(dm->engine, fresh.retry_after_s);
  report_restart_needed(&dm->cfg, &fresh);
  config_free(&fresh);
  log_info("provd", "SIGHUP: config reloaded (log_level, service_policies, "
                    "tls, registration.retry_after)");
  /* On the writer, behind any queued hub change: an older read cannot
   * swap in a list older than a change already applied. */
  if (store_submit_read_on_writer(dm->store, reload_hubs_on_store,
                                  dm->engine) != PROVD_OK)
    log_error("provd", "SIGHUP: store busy; linked hubs not reloaded");
}

/* Tells the service manager (systemd's Type=notify) where provd is; a
 * failure is logged and otherwise ignored: serving matters more. */
static void notify_manager(int level, const char *state)
{
  if (service_notify(state) < 0)
    log_msg(level, "provd", "service manager notification failed: %s",
            strerror(errno));
}

/* SIGHUP as the service manager wants it seen: RELOADING=1 (with the
 * monotonic time systemd's notify-reload asks for), then READY=1. */
static void reload_notified(const struct options *opts, struct daemon *dm)
{
  char state[64];
  snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%lld",
           (long long)(time_mono_ns() / 1000));
  notify_manager(LOG_WARN, state);
  reload(opts, dm);
  notify_manager(LOG_WARN, "READY=1");
}

/* WATCHDOG=1 only while every worker loop turns: a provd whose loops
 * hang (a deadlock, a handler that never returns) is one the service
 * manager should restart, however well this thread still runs. */
static void watchdog_ping(const struct daemon *dm, long ping_ms)
{
  long stall = http_server_stall_ms(dm->http);
  if (dm->console_http) {
    long console = http_server_stall_ms(dm->console_http);
    stall = console > stall ? console : stall;
  }
  if (stall > ping_ms) {
    log_warn("provd", "watchdog: a worker loop is %ld ms overdue; "
                      "WATCHDOG=1 withheld", stall);
    return;
  }
  notify_manager(LOG_DEBUG, "WATCHDOG=1");
}

/* Serves until SIGTERM or SIGINT (returned), reloading on SIGHUP and
 * pinging the service manager's watchdog (WATCHDOG_USEC) on time even
 * when signals keep arriving. */
static int serve_until_stop_signal(const struct options *opts,
                                   struct daemon *dm, const sigset_t *signals)
{
  long ping_ms = service_watchdog_interval_ms();
  long long next_ping = (long long)time_mono_ms() + ping_ms;
  for (;;) {
    int sig;
    if (ping_ms > 0) {
      long long wait_ms = next_ping - (long long)time_mono_ms();
      if (wait_ms < 0)
        wait_ms = 0;
      struct timespec wait = {(time_t)(wait_ms / 1000),
                              (long)(wait_ms % 1000) * 1000000L};
      sig = sigtimedwait(signals, NULL, &wait);
    } else {
      sig = sigwaitinfo(signals, NULL);
    }
    if (ping_ms > 0 && (long long)time_mono_ms() >= next_ping) {
      watchdog_ping(dm, ping_ms);
      next_ping = (long long)time_mono_ms() + ping_ms;
    }
    if (sig == SIGHUP)
      reload_notified(opts, dm);
    else if (sig > 0)
      return sig;
  }
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "restore") == 0)
    return restore_main(argc - 1, argv + 1);
  struct options opts = {0};
  int rc = parse_args(argc, argv, &opts);
  if (rc >= 0)
    return rc;
  static struct daemon dm;
  if (load_config(&opts, &dm.cfg) != 0 || apply_overrides(&opts, &dm.cfg))
    return 2;
  log_set_level(dm.cfg.log_level);
  if (opts.check_config) {
    rc = check_config_only(&dm.cfg);
    config_free(&dm.cfg);
    return rc;
  }
  if (opts.print_connection_string) {
    rc = print_connection_string(&dm.cfg);
    config_free(&dm.cfg);
    return rc;
  }
  /* Signals are taken synchronously by this thread only: block them
   * before any worker thread exists so every thread inherits the mask. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct provd_err err = {0};
  dm.show_connection_string = opts.show_connection_string;
  rc = start_daemon(&dm, &err);
  if (rc != 0) {
    if (err.msg[0])
      log_error("provd", "cannot start: %s", err.msg);
    stop_daemon(&dm);
    config_free(&dm.cfg);
    return rc == -2 ? 2 : 1;
  }
  char ready[128];
  snprintf(ready, sizeof(ready), "READY=1\nSTATUS=serving https on %s:%d",
           dm.cfg.https.host, http_server_port(dm.http));
  notify_manager(LOG_WARN, ready); /* the listeners accept by now */
  int sig = serve_until_stop_signal(&opts, &dm, &stop_signals);
  notify_manager(LOG_WARN, "STOPPING=1");
  log_info("provd", "signal %d: stopping (finishing in-flight requests)", sig);
  stop_daemon(&dm);
  config_free(&dm.cfg);
  log_info("provd", "stopped");
  return 0;
}
