/* The trust material of one enrollment (its certificates and CRLs), and a
 * small cache of it: parsing certificates is most of the plugin's CPU
 * (OpenSSL 3 decodes every public key through its provider framework),
 * and every device of a group presents the same CA.  Entries are keyed by
 * a SHA-256 of the texts they were parsed from, so a replaced certificate
 * or CRL is simply another key: nothing is invalidated, nothing stale is
 * ever used. */
#ifndef X509_TRUST_H
#define X509_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

struct trust {
  X509 *anchors[2];         /* primary, secondary; NULL when absent */
  STACK_OF(X509_CRL) *crls; /* NULL: no CRL */
  /* Group anchors: their certinfo_json, made once per parse because
   * every registration through the group answers it; NULL otherwise. */
  char *anchor_info[2];
};

#define TRUST_KEY_LEN 32

void trust_clear(struct trust *t);

struct trust_cache;

/* slots: entries kept (least recently used goes first).  NULL without
 * memory. */
struct trust_cache *trust_cache_new(size_t slots);
void trust_cache_free(struct trust_cache *c);

/* On a hit, *out gets its own references to the entry (release them
 * with trust_clear) and 1 is returned; 0 on a miss.  Thread-safe. */
int trust_cache_get(struct trust_cache *c, const uint8_t key[TRUST_KEY_LEN],
                    struct trust *out);
/* Keeps references to t under key (t stays the caller's).  Thread-safe. */
void trust_cache_put(struct trust_cache *c, const uint8_t key[TRUST_KEY_LEN],
                     const struct trust *t);

#endif
