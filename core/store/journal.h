/* The tamper-evident journal over the outbox: every event carries the
 * SHA-256 of the previous event and of its own canonical bytes.  The
 * chain is computed on the store writer thread, in the transaction that
 * appends the event; verification walks it on any session. */
#ifndef CORE_STORE_JOURNAL_H
#define CORE_STORE_JOURNAL_H

#include <stdint.h>

#include "provd/storage.h"
#include "store/store.h"

#define JOURNAL_HASH_HEX 65 /* 64 hex digits and a NUL */
/* prev_hash of the first event ever written. */
#define JOURNAL_GENESIS \
  "0000000000000000000000000000000000000000000000000000000000000000"
/* Record id (in PROVD_TABLE_NOTIFIER_CURSORS) of the hash the oldest
 * kept event links to after a retention cut; '$' is not allowed in
 * instance ids. */
#define JOURNAL_ANCHOR_ID "$journal-anchor"

/* Hex SHA-256 over the event's canonical bytes: every field that
 * matters (event_id, type, time_ms, subject, body_json, prev_hash), each
 * length-prefixed so no two events share their bytes.  seq is left out:
 * the store assigns it after the hash is computed; order is what
 * prev_hash proves. */
void journal_hash(const struct provd_outbox_event *ev,
                  char out[JOURNAL_HASH_HEX]);

/* The hash the next event links to: the last event's, the anchor's when
 * the journal was cut to nothing, else JOURNAL_GENESIS. */
int journal_prev_hash(struct store_session *s, char out[JOURNAL_HASH_HEX],
                      struct provd_err *err);

struct journal_report {
  uint64_t events;       /* chained events checked */
  uint64_t unchained;    /* events written before the journal existed */
  uint64_t first_seq, last_seq;
  char last_hash[JOURNAL_HASH_HEX];
  uint64_t broken_seq;   /* 0: the chain holds */
  char problem[256];     /* what is wrong at broken_seq */
};

/* Walks the whole journal from the anchor (or genesis).  PROVD_OK when
 * it could be read (r->broken_seq says whether it holds). */
int journal_verify(struct store_session *s, struct journal_report *r,
                   struct provd_err *err);

/* Retention: deletes events with seq < before_seq, recording the hash of
 * the last deleted one as the anchor, in one transaction.  Never deletes
 * the newest event (the next one must link to it).  *removed gets the
 * count when not NULL. */
int journal_trim(struct store_session *s, uint64_t before_seq,
                 uint64_t *removed, struct provd_err *err);

/* Where retention would cut (*before_seq; 0: nothing to cut): events
 * older than max_age_ms (0: no age limit) or beyond the newest
 * max_count (0: no count limit).  Reads at most a bounded number of
 * events per call; the next call goes on. */
int journal_retention_cut(struct store_session *s, int64_t max_age_ms,
                          int64_t max_count, int64_t now_ms,
                          uint64_t *before_seq, struct provd_err *err);

#endif
