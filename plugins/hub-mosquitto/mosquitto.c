/* mosquitto hub connector: the devices assigned to a hub served by a
 * mosquitto broker are written to an identities file that the broker's
 * provd auth plugin (tools/mosquitto-auth) watches.  The file is
 * rewritten whole and renamed into place, so the broker never reads half
 * of it.  Format (docs/hubs.md), one device per line, tab-separated:
 *
 *   # provd hub identities v1
 *   DEVICE_ID  REGISTRATION_ID  HUB_HOSTNAME  PRIMARY_KEY_B64|-  THUMBPRINT|-
 *
 * health() connects to the broker's listener (option `broker`). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provd/host.h"
#include "provd/hub.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define FILE_HEADER "# provd hub identities v1\n"
#define FIELD_MAX 256
#define MAX_DEVICES 1000000
#define CONNECT_TIMEOUT_MS 1000

enum { F_DEVICE, F_REGID, F_HOST, F_KEY, F_THUMB, N_FIELDS };

struct identity {
  char f[N_FIELDS][FIELD_MAX];
};

struct mosq_hub {
  const struct provd_host_api *host;
  struct provd_instance *inst;
  char *file;
  char broker_host[256];
  char broker_port[16];
  mode_t mode;
  struct identity *ids; /* unordered; lookups are by registration id */
  size_t n, cap;
};

static int mh_create(const struct provd_host_api *host,
                     struct provd_instance *inst, void **state,
                     struct provd_err *err)
{
  struct mosq_hub *m = calloc(1, sizeof(*m));
  if (!m) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  m->host = host;
  m->inst = inst;
  *state = m;
  return PROVD_OK;
}

static void mh_destroy(void *state)
{
  struct mosq_hub *m = state;
  if (!m)
    return;
  free(m->file);
  free(m->ids);
  free(m);
}

/* "host:port" (IPv6 in brackets) into its parts; 0 or -1. */
static int split_host_port(const char *text, char *host, size_t hcap,
                           char *port, size_t pcap)
{
  const char *colon = strrchr(text, ':');
  if (!colon || !colon[1])
    return -1;
  const char *h = text;
  size_t hl = (size_t)(colon - text);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl == 0 || hl >= hcap || strlen(colon + 1) >= pcap)
    return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  snprintf(port, pcap, "%s", colon + 1);
  return 0;
}

static int mh_configure(void *state, const struct provd_cfg *options,
                        struct provd_err *err)
{
  struct mosq_hub *m = state;
  const struct provd_host_api *h = m->host;
  const char *file = NULL, *broker = NULL, *mode = NULL;
  h->cfg_str(options, "identities_file", &file);
  if (!file || !(m->file = strdup(file))) {
    h->err_set(err, "BAD_OPTION", "identities_file is required");
    return PROVD_E_CONFIG;
  }
  if (h->cfg_str(options, "broker", &broker) == PROVD_OK && broker &&
      split_host_port(broker, m->broker_host, sizeof(m->broker_host),
                      m->broker_port, sizeof(m->broker_port)) != 0) {
    h->err_set(err, "BAD_OPTION", "broker: '%s' is not HOST:PORT", broker);
    return PROVD_E_CONFIG;
  }
  m->mode = 0600;
  if (h->cfg_str(options, "file_mode", &mode) == PROVD_OK && mode) {
    char *end = NULL;
    long v = strtol(mode, &end, 8);
    if (*end || v < 0400 || v > 0660 || (v & 0117)) {
      h->err_set(err, "BAD_OPTION", "file_mode: '%s' is not 0600, 0640 or "
                 "0660", mode);
      return PROVD_E_CONFIG;
    }
    m->mode = (mode_t)v;
  }
  return PROVD_OK;
}

/* ---- the identities file ---- */

static int field_ok(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n >= FIELD_MAX)
    return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x21 || *p == 0x7f)
      return 0; /* no tabs, newlines, spaces: the format splits on them */
  return 1;
}

static int parse_line(char *line, struct identity *out)
{
  char *save = NULL;
  size_t i = 0;
  for (char *tok = strtok_r(line, "\t\n", &save); tok && i < N_FIELDS;
       tok = strtok_r(NULL, "\t\n", &save), i++) {
    if (!field_ok(tok))
      return -1;
    snprintf(out->f[i], FIELD_MAX, "%s", tok);
  }
  return i == N_FIELDS ? 0 : -1;
}

static int grow(struct mosq_hub *m)
{
  if (m->n < m->cap)
    return 0;
  size_t cap = m->cap ? 2 * m->cap : 64;
  struct identity *ids = realloc(m->ids, cap * sizeof(*ids));
  if (!ids)
    return -1;
  m->ids = ids;
  m->cap = cap;
  return 0;
}

/* What an earlier run wrote; a missing file is an empty hub. */
static int load_file(struct mosq_hub *m, struct provd_err *err)
{
  FILE *f = fopen(m->file, "r");
  if (!f) {
    if (errno == ENOENT)
      return PROVD_OK;
    m->host->err_set(err, "IO", "%s: %s", m->file, strerror(errno));
    return PROVD_E_IO;
  }
  char line[N_FIELDS * FIELD_MAX + 8];
  while (fgets(line, sizeof(line), f) && m->n < MAX_DEVICES) {
    if (line[0] == '#' || line[0] == '\n')
      continue;
    if (grow(m) != 0)
      break;
    if (parse_line(line, &m->ids[m->n]) == 0)
      m->n++;
  }
  fclose(f);
  return PROVD_OK;
}

static int write_all(int fd, const char *s, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The whole table into FILE.tmp, then renamed over FILE. */
static int save_file(struct mosq_hub *m, struct provd_err *err)
{
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", m->file) >= (int)sizeof(tmp)) {
    m->host->err_set(err, "IO", "identities_file path too long");
    return PROVD_E_IO;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, m->mode);
  int ok = fd >= 0 && fchmod(fd, m->mode) == 0 &&
           write_all(fd, FILE_HEADER, strlen(FILE_HEADER)) == 0;
  for (size_t i = 0; ok && i < m->n; i++) {
    char line[N_FIELDS * FIELD_MAX + 8];
    const struct identity *id = &m->ids[i];
    int len = snprintf(line, sizeof(line), "%s\t%s\t%s\t%s\t%s\n",
                       id->f[F_DEVICE], id->f[F_REGID], id->f[F_HOST],
                       id->f[F_KEY], id->f[F_THUMB]);
    ok = write_all(fd, line, (size_t)len) == 0;
  }
  ok = ok && fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0)
    ok = 0;
  if (ok && rename(tmp, m->file) == 0)
    return PROVD_OK;
  int e = errno;
  unlink(tmp);
  m->host->err_set(err, "IO", "%s: %s", m->file, strerror(e));
  return PROVD_E_UNAVAILABLE; /* retried by the core */
}

static struct identity *find(struct mosq_hub *m, const char *regid)
{
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->ids[i].f[F_REGID], regid) == 0)
      return &m->ids[i];
  return NULL;
}

static int mh_start(void *state, struct provd_err *err)
{
  return load_file(state, err);
}

static int fill(struct identity *out, const struct provd_device *dev)
{
  const char *v[N_FIELDS] = {
      dev->device_id, dev->registration_id, dev->hub_hostname,
      dev->symmetric_key ? dev->symmetric_key : "-",
      dev->x509_thumbprint ? dev->x509_thumbprint : "-"};
  for (int i = 0; i < N_FIELDS; i++) {
    if (!v[i] || !field_ok(v[i]))
      return -1;
    snprintf(out->f[i], FIELD_MAX, "%s", v[i]);
  }
  return 0;
}

static int mh_ensure(void *state, struct provd_call *call,
                     const struct provd_device *dev, struct provd_err *err)
{
  (void)call;
  struct mosq_hub *m = state;
  struct identity fresh;
  if (fill(&fresh, dev) != 0) {
    m->host->err_set(err, "BAD_DEVICE", "device %s: an id, host name or key "
                     "this hub cannot hold", dev->registration_id);
    return PROVD_E_INVAL;
  }
  struct identity *cur = find(m, dev->registration_id);
  if (cur && memcmp(cur, &fresh, sizeof(fresh)) == 0)
    return PROVD_OK;
  if (!cur) {
    if (m->n >= MAX_DEVICES || grow(m) != 0) {
      m->host->err_set(err, "FULL", "hub identities table is full");
      return PROVD_E_UNAVAILABLE;
    }
    cur = &m->ids[m->n++];
  }
  *cur = fresh;
  return save_file(m, err);
}

static int mh_remove(void *state, struct provd_call *call,
                     const struct provd_device *dev, struct provd_err *err)
{
  (void)call;
  struct mosq_hub *m = state;
  struct identity *cur = find(m, dev->registration_id);
  if (!cur)
    return PROVD_OK;
  *cur = m->ids[--m->n];
  return save_file(m, err);
}

/* The broker's listener accepts a TCP connection within a second. */
static int mh_health(void *state, struct provd_err *err)
{
  struct mosq_hub *m = state;
  if (!m->broker_host[0])
    return PROVD_OK;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(m->broker_host, m->broker_port, &hints, &res);
  if (rc != 0) {
    m->host->err_set(err, "HUB_UNREACHABLE", "broker %s: %s", m->broker_host,
                     gai_strerror(rc));
    return PROVD_E_UNAVAILABLE;
  }
  int up = 0;
  for (struct addrinfo *a = res; a && !up; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    a->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      up = 1;
    } else if (errno == EINPROGRESS) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      int soerr = 0;
      socklen_t len = sizeof(soerr);
      up = poll(&p, 1, CONNECT_TIMEOUT_MS) == 1 &&
           getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
           soerr == 0;
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (up)
    return PROVD_OK;
  m->host->err_set(err, "HUB_UNREACHABLE", "broker %s:%s does not accept "
                   "connections", m->broker_host, m->broker_port);
  return PROVD_E_UNAVAILABLE;
}

static const struct provd_option mh_options[] = {
    {"identities_file", PROVD_OPT_PATH, NULL, PROVD_OPT_REQUIRED,
     "File the broker's provd auth plugin reads (plugin_opt_identities); "
     "rewritten and renamed into place on every change.", NULL},
    {"broker", PROVD_OPT_STRING, NULL, 0,
     "HOST:PORT of the broker's listener; health checks connect to it.",
     NULL},
    {"file_mode", PROVD_OPT_STRING, "0600", 0,
     "Mode of the identities file (0640 when the broker runs as another "
     "user of provd's group).", NULL},
    {NULL, 0, NULL, 0, NULL, NULL}};

static const struct provd_lifecycle mh_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = mh_create,
    .configure = mh_configure,
    .start = mh_start,
    .destroy = mh_destroy,
};

static const struct provd_hub_ops mh_ops = {
    .struct_size = sizeof(struct provd_hub_ops),
    .ensure_device = mh_ensure,
    .remove_device = mh_remove,
    .health = mh_health,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_HUB,
    .flags = 0,
    .min_host_minor = 0,
    .name = "mosquitto",
    .version = PROVD_VERSION,
    .description = "Devices may connect to a mosquitto broker as themselves "
                   "(with the provd auth plugin)",
    .vendor = "provd",
    .options = mh_options,
    .lifecycle = &mh_lifecycle,
    .ops = &mh_ops,
};
