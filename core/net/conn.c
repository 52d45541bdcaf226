#include "net/conn.h"

void net_conns_add(struct net_conns *l, struct net_conn *c)
{
  c->prev = NULL;
  c->next = l->head;
  if (l->head)
    l->head->prev = c;
  l->head = c;
  l->n++;
}

void net_conns_remove(struct net_conns *l, struct net_conn *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    l->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  l->n--;
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
