#include "net/conn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/allocator.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"

#define TRIM_AFTER_PEAK 256
#define SHED_LOG_INTERVAL_NS (10ULL * 1000 * 1000 * 1000)
#define SOURCE_BUCKETS 4096
/* A handshake this old has stalled: a client on a slow link still sends
 * its ClientHello within a few round trips. */
#define HANDSHAKE_STALLED_NS (1000ULL * 1000 * 1000)
/* Handshakes looked at for a stalled one per new connection: bounded
 * work at accept, whatever the queue holds. */
#define STALLED_SEARCH_MAX 64

struct source_count {
  struct source_count *next;
  size_t open;
  char addr[48];
};

/* Entries exist only for addresses with open connections, so the table
 * is bounded by the listener's connection limit. */
struct net_sources {
  pthread_mutex_t mu;
  size_t limit;
  struct source_count *buckets[SOURCE_BUCKETS];
};

void net_conns_add(struct net_conns *l, struct net_conn *c)
{
  c->prev = NULL;
  c->next = l->head;
  if (l->head)
    l->head->prev = c;
  l->head = c;
  l->n++;
  if (l->n > l->peak)
    l->peak = l->n;
}

void net_conns_remove(struct net_conns *l, struct net_conn *c)
{
  net_conns_handshake_end(l, c);
  if (c->prev)
    c->prev->next = c->next;
  else
    l->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  l->n--;
  if (l->peak >= TRIM_AFTER_PEAK && l->n <= l->peak / 4) {
    l->peak = l->n;
    allocator_release_free_memory();
  }
}

void net_conns_handshake_begin(struct net_conns *l, struct net_conn *c)
{
  if (c->handshaking)
    return;
  c->handshaking = true;
  c->hs_since_ns = time_mono_ns();
  c->hs_next = NULL;
  c->hs_prev = l->hs_newest;
  if (l->hs_newest)
    l->hs_newest->hs_next = c;
  else
    l->hs_oldest = c;
  l->hs_newest = c;
  l->n_handshaking++;
}

void net_conns_handshake_end(struct net_conns *l, struct net_conn *c)
{
  if (!c->handshaking)
    return;
  c->handshaking = false;
  if (c->hs_prev)
    c->hs_prev->hs_next = c->hs_next;
  else
    l->hs_oldest = c->hs_next;
  if (c->hs_next)
    c->hs_next->hs_prev = c->hs_prev;
  else
    l->hs_newest = c->hs_prev;
  c->hs_prev = c->hs_next = NULL;
  l->n_handshaking--;
}

enum net_handshake_admission
net_conns_handshake_admission(const struct net_conns *l, size_t max,
                              struct net_conn **stalled)
{
  *stalled = NULL;
  if (l->n_handshaking < max)
    return NET_HANDSHAKE_ADMIT;
  uint64_t now = time_mono_ns();
  size_t looked = 0;
  /* Oldest first, so the search ends at the first young one. */
  for (struct net_conn *c = l->hs_oldest;
       c && looked < STALLED_SEARCH_MAX &&
       now - c->hs_since_ns >= HANDSHAKE_STALLED_NS;
       c = c->hs_next, looked++)
    if (!(c->stream && stream_hello_received(c->stream))) {
      *stalled = c;
      return NET_HANDSHAKE_EVICT_STALLED;
    }
  return NET_HANDSHAKE_REFUSE;
}

bool net_conns_admit_handshake(struct net_conns *l, size_t max,
                               const char *transport, const char *peer,
                               void (*close_stalled)(struct net_conn *c))
{
  struct net_conn *stalled;
  switch (net_conns_handshake_admission(l, max, &stalled)) {
  case NET_HANDSHAKE_ADMIT:
    return true;
  case NET_HANDSHAKE_EVICT_STALLED:
    net_conns_shed(l, transport, "handshake_stalled", peer);
    close_stalled(stalled);
    return true;
  case NET_HANDSHAKE_REFUSE:
  default:
    net_conns_shed(l, transport, "handshake_backlog", peer);
    return false;
  }
}

void net_conns_shed(struct net_conns *l, const char *transport,
                    const char *reason, const char *peer)
{
  char labels[96];
  snprintf(labels, sizeof labels, "transport=\"%s\",reason=\"%s\"",
           transport, reason);
  metrics_add("provd_connections_shed_total",
              "Connections refused or closed to keep a listener usable, by "
              "reason", labels, 1);
  l->shed_unlogged++;
  uint64_t now = time_mono_ns();
  if (l->shed_log_ns && now - l->shed_log_ns < SHED_LOG_INTERVAL_NS)
    return;
  log_warn("net", "shedding connections transport=%s reason=%s peer=%s "
                  "open=%zu handshaking=%zu shed_since_last_line=%zu (see "
                  "limits in docs/operations.md)",
           transport, reason, peer, l->n, l->n_handshaking, l->shed_unlogged);
  l->shed_log_ns = now;
  l->shed_unlogged = 0;
}

void net_conn_deadline_start(struct net_conn *c, int seconds)
{
  if (!c->deadline || evtimer_pending(c->deadline, NULL))
    return;
  struct timeval tv = {seconds, 0};
  evtimer_add(c->deadline, &tv);
}

void net_conn_deadline_stop(struct net_conn *c)
{
  if (c->deadline)
    evtimer_del(c->deadline);
}

struct net_sources *net_sources_new(size_t limit)
{
  struct net_sources *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  pthread_mutex_init(&t->mu, NULL);
  t->limit = limit;
  return t;
}

void net_sources_free(struct net_sources *t)
{
  if (!t)
    return;
  for (size_t i = 0; i < SOURCE_BUCKETS; i++) {
    struct source_count *next;
    for (struct source_count *e = t->buckets[i]; e; e = next) {
      next = e->next;
      free(e);
    }
  }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* The address part of "1.2.3.4:port" or "[::1]:port". */
static void source_of(const char *peer, char out[48])
{
  const char *start = peer[0] == '[' ? peer + 1 : peer;
  const char *end = peer[0] == '[' ? strchr(start, ']') : strrchr(start, ':');
  size_t n = end ? (size_t)(end - start) : strlen(start);
  snprintf(out, 48, "%.*s", (int)(n < 47 ? n : 47), start);
}

static struct source_count **bucket_of(struct net_sources *t,
                                       const char *addr)
{
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = addr; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return &t->buckets[h % SOURCE_BUCKETS];
}

bool net_sources_take(struct net_sources *t, struct net_conn *c,
                      const char *peer)
{
  if (!t)
    return true;
  char addr[48];
  source_of(peer, addr);
  pthread_mutex_lock(&t->mu);
  struct source_count **b = bucket_of(t, addr), *e = *b;
  while (e && strcmp(e->addr, addr) != 0)
    e = e->next;
  bool ok = !e || e->open < t->limit;
  if (ok && !e && (e = calloc(1, sizeof *e)) != NULL) {
    snprintf(e->addr, sizeof e->addr, "%s", addr);
    e->next = *b;
    *b = e;
  }
  if (ok && e) {
    e->open++;
    c->source_table = t;
    snprintf(c->source, sizeof c->source, "%s", addr);
  }
  pthread_mutex_unlock(&t->mu);
  return ok;
}

static void sources_give(struct net_conn *c)
{
  struct net_sources *t = c->source_table;
  c->source_table = NULL;
  pthread_mutex_lock(&t->mu);
  struct source_count **p = bucket_of(t, c->source);
  while (*p && strcmp((*p)->addr, c->source) != 0)
    p = &(*p)->next;
  struct source_count *e = *p;
  if (e && --e->open == 0) {
    *p = e->next;
    free(e);
  }
  pthread_mutex_unlock(&t->mu);
}

bool net_conn_close_socket(struct net_conn *c)
{
  if (c->source_table)
    sources_give(c);
  if (c->deadline) {
    event_free(c->deadline);
    c->deadline = NULL;
  }
  if (!c->stream)
    return false;
  stream_free(c->stream);
  c->stream = NULL;
  return true;
}
