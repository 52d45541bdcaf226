#include "net/conn.h"

#include <malloc.h>
#include <stdio.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"

#define TRIM_AFTER_PEAK 256
#define SHED_LOG_INTERVAL_NS (10ULL * 1000 * 1000 * 1000)

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
    malloc_trim(0);
  }
}

void net_conns_handshake_begin(struct net_conns *l, struct net_conn *c)
{
  if (c->handshaking)
    return;
  c->handshaking = true;
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

bool net_conn_close_socket(struct net_conn *c)
{
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
