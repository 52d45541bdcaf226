/* What every accepted connection on a worker loop has, whatever its
 * protocol (net/http.c, net/mqtt.c): its stream, a deadline timer, and
 * its place in the worker's list.  Each protocol's connection embeds a
 * struct net_conn as its first member; only the loop thread touches it. */
#ifndef CORE_NET_CONN_H
#define CORE_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "net/stream.h"

struct net_conn {
  struct stream *stream;   /* NULL once the socket is closed */
  struct event *deadline;  /* freed with the socket */
  struct net_conn *prev, *next;
};

struct net_conns {
  struct net_conn *head;
  size_t n;
};

void net_conns_add(struct net_conns *l, struct net_conn *c);
void net_conns_remove(struct net_conns *l, struct net_conn *c);

/* Arms the deadline unless it runs already: it counts from the first
 * byte of what it bounds, not from the latest. */
void net_conn_deadline_start(struct net_conn *c, int seconds);
void net_conn_deadline_stop(struct net_conn *c);

/* Frees the deadline and closes the stream; true when a stream was open. */
bool net_conn_close_socket(struct net_conn *c);

#endif
