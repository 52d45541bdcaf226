/* The journal's hash chain (journal.h). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "store/journal.h"
#include "store/store_int.h"

/* Writes "<length>:<bytes>\n" of one field; NULL hashes as "-\n", which
 * no length-prefixed field can be. */
static void hash_field(EVP_MD_CTX *md, const char *v, size_t len)
{
  if (!v) {
    EVP_DigestUpdate(md, "-\n", 2);
    return;
  }
  char prefix[24];
  int n = snprintf(prefix, sizeof(prefix), "%zu:", len);
  EVP_DigestUpdate(md, prefix, (size_t)n);
  EVP_DigestUpdate(md, v, len);
  EVP_DigestUpdate(md, "\n", 1);
}

static void hash_text(EVP_MD_CTX *md, const char *v)
{
  hash_field(md, v, v ? strlen(v) : 0);
}

/* Fetched once: OpenSSL 3 looks a digest up in its provider tables on
 * every EVP_sha256() init, which costs more than hashing an event. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
  sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

static const char hex_digits[] = "0123456789abcdef";

void journal_hash(const struct provd_outbox_event *ev,
                  char out[JOURNAL_HASH_HEX])
{
  unsigned char digest[32];
  unsigned int dlen = 0;
  char when[24];
  snprintf(when, sizeof(when), "%" PRId64, ev->time_ms);
  pthread_once(&sha256_once, fetch_sha256);
  EVP_MD_CTX *md = sha256_md ? EVP_MD_CTX_new() : NULL;
  int ok = md && EVP_DigestInit_ex2(md, sha256_md, NULL) == 1;
  if (ok) {
    EVP_DigestUpdate(md, "provd-event-v1\n", 15);
    hash_text(md, ev->event_id);
    hash_text(md, ev->type);
    hash_text(md, when);
    hash_text(md, ev->subject);
    hash_text(md, ev->body_json);
    hash_text(md, ev->prev_hash);
    ok = EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
  }
  EVP_MD_CTX_free(md);
  if (!ok) { /* only without memory; an all-x hash never verifies */
    memset(out, 'x', JOURNAL_HASH_HEX - 1);
    out[JOURNAL_HASH_HEX - 1] = '\0';
    return;
  }
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex_digits[digest[i] >> 4];
    out[2 * i + 1] = hex_digits[digest[i] & 15];
  }
  out[64] = '\0';
}

static int copy_hash(void *ud, const struct provd_outbox_event *ev)
{
  char *out = ud;
  const int chained = PROVD_HAS(ev, struct provd_outbox_event, hash) &&
                      ev->hash && strlen(ev->hash) == JOURNAL_HASH_HEX - 1;
  snprintf(out, JOURNAL_HASH_HEX, "%s", chained ? ev->hash : JOURNAL_GENESIS);
  return PROVD_OK;
}

static int read_anchor(struct store_session *s, uint64_t *seq,
                       char hash[JOURNAL_HASH_HEX], struct provd_err *err)
{
  struct store_rec rec;
  int rc = store_get(s, PROVD_TABLE_NOTIFIER_CURSORS, JOURNAL_ANCHOR_ID, &rec,
                     err);
  if (rc != PROVD_OK)
    return rc;
  const char *h = json_string_value(json_object_get(rec.body, "hash"));
  *seq = (uint64_t)json_integer_value(json_object_get(rec.body, "seq"));
  snprintf(hash, JOURNAL_HASH_HEX, "%s", h ? h : "");
  store_rec_clear(&rec);
  return PROVD_OK;
}

static int have_journal_ops(struct store_session *s, struct provd_err *err)
{
  if (PROVD_HAS(s->st->ops, struct provd_storage_ops, outbox_trim) &&
      s->st->ops->outbox_last && s->st->ops->outbox_trim)
    return PROVD_OK;
  perr_set(err, "STORE_UNSUPPORTED",
           "the storage plugin has no journal operations (ABI minor 3)");
  return PROVD_E_UNSUPPORTED;
}

int journal_prev_hash(struct store_session *s, char out[JOURNAL_HASH_HEX],
                      struct provd_err *err)
{
  snprintf(out, JOURNAL_HASH_HEX, "%s", JOURNAL_GENESIS);
  int rc = have_journal_ops(s, err);
  if (rc != PROVD_OK)
    return rc;
  /* On a shared store the head is read under the lock the append will
   * hold, so no other instance links an event to the same head. */
  const struct provd_storage_ops *ops = s->st->ops;
  if (s->depth > 0 && PROVD_HAS(ops, struct provd_storage_ops, outbox_head) &&
      ops->outbox_head)
    rc = ops->outbox_head(s->ps, copy_hash, out, err);
  else
    rc = ops->outbox_last(s->ps, copy_hash, out, err);
  if (rc == PROVD_NOT_FOUND) { /* empty: cut to nothing, or brand new */
    uint64_t seq = 0;
    struct provd_err ignored;
    if (read_anchor(s, &seq, out, &ignored) != PROVD_OK)
      snprintf(out, JOURNAL_HASH_HEX, "%s", JOURNAL_GENESIS);
    rc = PROVD_OK;
  }
  return rc;
}

/* ---- verification ---- */

struct walk {
  struct journal_report *r;
  char expect[JOURNAL_HASH_HEX]; /* what the next prev_hash must be */
  uint64_t anchor_seq;
  uint64_t next_after;
};

static int broken(struct walk *w, uint64_t seq, const char *problem)
{
  w->r->broken_seq = seq;
  snprintf(w->r->problem, sizeof(w->r->problem), "%s", problem);
  return PROVD_DECLINED; /* stops the listing */
}

static int check_event(void *ud, const struct provd_outbox_event *ev)
{
  struct walk *w = ud;
  struct journal_report *r = w->r;
  w->next_after = ev->seq;
  if (!ev->hash) {
    if (r->events > 0)
      return broken(w, ev->seq, "event has no hash inside the chain");
    r->unchained++;
    return PROVD_OK;
  }
  if (r->events == 0)
    r->first_seq = ev->seq;
  else if (ev->seq <= r->last_seq)
    return broken(w, ev->seq, "sequence number does not increase");
  if (ev->seq <= w->anchor_seq)
    return broken(w, ev->seq, "event is older than the retention anchor");
  if (!ev->prev_hash || strcmp(ev->prev_hash, w->expect) != 0)
    return broken(w, ev->seq,
                  r->events == 0 ? "prev_hash does not match the journal's "
                                   "anchor"
                                 : "prev_hash does not match the hash of the "
                                   "event before it (an event was removed, "
                                   "inserted or reordered)");
  char h[JOURNAL_HASH_HEX];
  journal_hash(ev, h);
  if (strcmp(h, ev->hash) != 0)
    return broken(w, ev->seq, "the event's bytes do not match its hash (it "
                              "was modified)");
  r->events++;
  r->last_seq = ev->seq;
  snprintf(w->expect, sizeof(w->expect), "%s", h);
  snprintf(r->last_hash, sizeof(r->last_hash), "%s", h);
  return PROVD_OK;
}

#define VERIFY_PAGE 1000
/* Walks again when retention moved the anchor during a walk. */
#define VERIFY_ATTEMPTS 5

static int verify_once(struct store_session *s, struct journal_report *r,
                       uint64_t *anchor_seq, struct provd_err *err)
{
  memset(r, 0, sizeof(*r));
  struct walk w = {.r = r};
  snprintf(w.expect, sizeof(w.expect), "%s", JOURNAL_GENESIS);
  int rc = read_anchor(s, &w.anchor_seq, w.expect, err);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
    return rc;
  *anchor_seq = w.anchor_seq;
  for (;;) {
    uint64_t before = w.next_after;
    rc = store_events(s, w.next_after, VERIFY_PAGE, check_event, &w, err);
    if (r->broken_seq) {
      perr_clear(err);
      return PROVD_OK;
    }
    if (rc != PROVD_OK)
      return rc;
    if (w.next_after == before)
      return PROVD_OK;
  }
}

/* The anchor and the pages are separate reads: a retention cut that
 * commits between them looks like a removed event.  A break counts only
 * when the anchor did not move during the walk. */
int journal_verify(struct store_session *s, struct journal_report *r,
                   struct provd_err *err)
{
  for (int attempt = 1;; attempt++) {
    uint64_t anchor_seq = 0, anchor_now = 0;
    int rc = verify_once(s, r, &anchor_seq, err);
    if (rc != PROVD_OK || !r->broken_seq || attempt == VERIFY_ATTEMPTS)
      return rc;
    char hash[JOURNAL_HASH_HEX];
    rc = read_anchor(s, &anchor_now, hash, err);
    if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
      return rc;
    perr_clear(err);
    if (anchor_now == anchor_seq)
      return PROVD_OK; /* a real break */
  }
}

/* ---- retention ---- */

struct cut {
  uint64_t before_seq;
  uint64_t last_seq;            /* newest event <= the cut, 0: none */
  char hash[JOURNAL_HASH_HEX];  /* its recomputed hash */
};

static int note_cut(void *ud, const struct provd_outbox_event *ev)
{
  struct cut *c = ud;
  if (ev->seq >= c->before_seq)
    return PROVD_DECLINED;
  c->last_seq = ev->seq;
  journal_hash(ev, c->hash);
  return PROVD_OK;
}

static int write_anchor(struct store_session *s, const struct cut *c,
                        struct provd_err *err)
{
  struct store_rec rec = {
      .id = (char *)JOURNAL_ANCHOR_ID,
      .body = json_pack("{s:I, s:s}", "seq", (json_int_t)c->last_seq, "hash",
                        c->hash),
  };
  if (!rec.body) {
    perr_set(err, "STORE_NOMEM", "no memory for the journal anchor");
    return PROVD_E_NOMEM;
  }
  int rc = store_put(s, PROVD_TABLE_NOTIFIER_CURSORS, &rec, NULL, 0, err);
  json_decref(rec.body);
  return rc;
}

static int last_seq_of(void *ud, const struct provd_outbox_event *ev)
{
  *(uint64_t *)ud = ev->seq;
  return PROVD_OK;
}

/* The highest seq in the journal; 0 when it is empty. */
static int newest_seq(struct store_session *s, uint64_t *out,
                      struct provd_err *err)
{
  *out = 0;
  int rc = have_journal_ops(s, err);
  if (rc == PROVD_OK)
    rc = s->st->ops->outbox_last(s->ps, last_seq_of, out, err);
  return rc == PROVD_NOT_FOUND ? PROVD_OK : rc;
}

int journal_trim(struct store_session *s, uint64_t before_seq,
                 uint64_t *removed, struct provd_err *err)
{
  if (removed)
    *removed = 0;
  uint64_t newest = 0;
  int rc = newest_seq(s, &newest, err);
  if (rc != PROVD_OK || newest == 0)
    return rc;
  if (before_seq > newest) /* the newest event stays: the next links to it */
    before_seq = newest;
  struct cut c = {.before_seq = before_seq};
  /* Only the event just below the cut is read (ids never repeat, so the
   * one at before_seq - 1 exists unless an earlier cut removed it). */
  uint64_t after = before_seq >= 2 ? before_seq - 2 : 0;
  rc = store_events(s, after, 1, note_cut, &c, err);
  if (rc == PROVD_DECLINED)
    rc = PROVD_OK;
  if (rc != PROVD_OK || c.last_seq == 0)
    return rc;
  uint64_t n = 0, floor = 0;
  struct provd_err ignored;
  char old_hash[JOURNAL_HASH_HEX];
  if (read_anchor(s, &floor, old_hash, &ignored) == PROVD_OK)
    n = c.last_seq > floor ? c.last_seq - floor : 0;
  else
    n = c.last_seq; /* approximate when events were never trimmed */
  rc = store_tx_begin(s, err);
  if (rc != PROVD_OK)
    return rc;
  rc = s->st->ops->outbox_trim(s->ps, before_seq, err);
  if (rc == PROVD_OK)
    rc = write_anchor(s, &c, err);
  if (rc == PROVD_OK)
    rc = store_tx_commit(s, err);
  if (rc != PROVD_OK) {
    store_tx_rollback(s, NULL);
    return rc;
  }
  if (removed)
    *removed = n;
  return PROVD_OK;
}

struct age_scan {
  int64_t oldest_kept_ms;
  uint64_t cut;      /* first seq young enough to keep, or past the page */
  int found;
};

static int note_age(void *ud, const struct provd_outbox_event *ev)
{
  struct age_scan *a = ud;
  if (ev->time_ms >= a->oldest_kept_ms) {
    a->cut = ev->seq;
    a->found = 1;
    return PROVD_DECLINED;
  }
  a->cut = ev->seq + 1;
  return PROVD_OK;
}

#define RETENTION_SCAN_MAX 10000

int journal_retention_cut(struct store_session *s, int64_t max_age_ms,
                          int64_t max_count, int64_t now_ms,
                          uint64_t *before_seq, struct provd_err *err)
{
  *before_seq = 0;
  uint64_t newest = 0;
  int rc = newest_seq(s, &newest, err);
  if (rc != PROVD_OK || newest == 0)
    return rc;
  if (max_count > 0 && newest > (uint64_t)max_count)
    *before_seq = newest - (uint64_t)max_count + 1;
  if (max_age_ms > 0) {
    struct age_scan a = {.oldest_kept_ms = now_ms - max_age_ms};
    rc = store_events(s, 0, RETENTION_SCAN_MAX, note_age, &a, err);
    if (rc != PROVD_OK && rc != PROVD_DECLINED)
      return rc;
    if (a.cut > *before_seq)
      *before_seq = a.cut;
  }
  return PROVD_OK;
}
