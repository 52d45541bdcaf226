/* What every accepted connection on a worker loop has, whatever its
 * protocol (net/http.c, net/mqtt.c): its stream, a deadline timer, and
 * its place in the worker's list.  Each protocol's connection embeds a
 * struct net_conn as its first member; only the loop thread touches it. */
#ifndef CORE_NET_CONN_H
#define CORE_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "net/stream.h"

struct net_sources;

struct net_conn {
  struct stream *stream;   /* NULL once the socket is closed */
  struct event *deadline;  /* freed with the socket */
  /* The per-source count this connection holds (net_sources_take),
   * given back when the socket closes; NULL when not counted. */
  struct net_sources *source_table;
  char source[48];
  struct net_conn *prev, *next;
  /* In the handshake queue (a TLS connection without a finished
   * handshake), oldest first. */
  struct net_conn *hs_prev, *hs_next;
  uint64_t hs_since_ns;    /* when it joined the handshake queue */
  bool handshaking;
};

struct net_conns {
  struct net_conn *head; /* newest first */
  size_t n;
  size_t peak;           /* most connections since memory was last trimmed */
  struct net_conn *hs_oldest, *hs_newest;
  size_t n_handshaking;
  uint64_t shed_log_ns;  /* when net_conns_shed last logged */
  size_t shed_unlogged;  /* sheds since then */
};

void net_conns_add(struct net_conns *l, struct net_conn *c);
/* Also leaves the handshake queue.  After a flood (the count falls to a
 * quarter of a peak of at least 256) the worker's free heap memory is
 * given back to the system: glibc keeps it in the thread's arena
 * otherwise (5,000 half-open TLS connections left ~250 MB). */
void net_conns_remove(struct net_conns *l, struct net_conn *c);

/* The handshake queue: what a flood of connections that never finish
 * their handshake may hold is bounded by evicting the oldest. */
void net_conns_handshake_begin(struct net_conns *l, struct net_conn *c);
void net_conns_handshake_end(struct net_conns *l, struct net_conn *c);

/* What a listener does with a new TLS connection when max handshakes
 * are already under way: below max it admits; at max, a stalled one
 * (*stalled: among the oldest, one whose ClientHello never arrived whole
 * within a second: a flood's half-open connection, a client gone) makes
 * room; otherwise the worker is merely behind and the newcomer is
 * refused at once, before it costs anything.  Closing a handshake whose ClientHello was taken in
 * would throw away the costly half of a handshake already done and,
 * under a boot storm, make the worker serve almost nothing
 * (bench/overload.sh). */
enum net_handshake_admission {
  NET_HANDSHAKE_ADMIT,
  NET_HANDSHAKE_EVICT_STALLED,
  NET_HANDSHAKE_REFUSE
};
enum net_handshake_admission
net_conns_handshake_admission(const struct net_conns *l, size_t max,
                              struct net_conn **stalled);
/* Applies that decision for a new connection from peer: a stalled one is
 * closed with close_stalled (counted as "handshake_stalled"); false when
 * the new one must be refused (counted as "handshake_backlog"). */
bool net_conns_admit_handshake(struct net_conns *l, size_t max,
                               const char *transport, const char *peer,
                               void (*close_stalled)(struct net_conn *c));

/* Counts a connection refused or closed to keep the listener usable, by
 * reason ("max_connections", "idle_evicted", "handshake_backlog"), in
 * provd_connections_shed_total{transport,reason}; logs at most one line
 * per worker every 10 s with the count since the last. */
void net_conns_shed(struct net_conns *l, const char *transport,
                    const char *reason, const char *peer);

/* Open connections per source address across a listener's workers,
 * for limits.max_connections_per_source.  Thread-safe. */
struct net_sources *net_sources_new(size_t limit);
void net_sources_free(struct net_sources *t);
/* Counts a new connection from peer ("1.2.3.4:port", "[::1]:port") into
 * c, or false when its address is at the limit.  A NULL table admits. */
bool net_sources_take(struct net_sources *t, struct net_conn *c,
                      const char *peer);

/* Arms the deadline unless it runs already: it counts from the first
 * byte of what it bounds, not from the latest. */
void net_conn_deadline_start(struct net_conn *c, int seconds);
void net_conn_deadline_stop(struct net_conn *c);

/* Frees the deadline and closes the stream; true when a stream was open. */
bool net_conn_close_socket(struct net_conn *c);

#endif
