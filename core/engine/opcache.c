#include "engine/opcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#define SHARDS 16
#define OP_ID_MAX 128
#define REG_ID_MAX 129

struct entry {
  char operation_id[OP_ID_MAX];
  char registration_id[REG_ID_MAX];
  unsigned char credential_hash[SHA256_DIGEST_LENGTH];
  int64_t reuse_until_s;
  int64_t expires_ms;
  char *body; /* owned; NULL = empty slot */
};

struct opcache {
  struct entry *slots;
  size_t mask;
  int64_t ttl_ms;
  pthread_mutex_t locks[SHARDS];
};

static size_t round_up_pow2(size_t n)
{
  size_t p = 1;
  while (p < n && p < ((size_t)1 << 30))
    p <<= 1;
  return p;
}

struct opcache *opcache_new(size_t slots, int64_t ttl_ms)
{
  struct opcache *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  size_t n = round_up_pow2(slots < SHARDS ? SHARDS : slots);
  c->slots = calloc(n, sizeof(*c->slots));
  if (!c->slots) {
    free(c);
    return NULL;
  }
  c->mask = n - 1;
  c->ttl_ms = ttl_ms;
  for (int i = 0; i < SHARDS; i++)
    pthread_mutex_init(&c->locks[i], NULL);
  return c;
}

void opcache_free(struct opcache *c)
{
  if (!c)
    return;
  for (size_t i = 0; i <= c->mask; i++)
    free(c->slots[i].body);
  for (int i = 0; i < SHARDS; i++)
    pthread_mutex_destroy(&c->locks[i]);
  free(c->slots);
  free(c);
}

/* FNV-1a: operation ids are random, any spreading hash will do. */
static size_t slot_of(const struct opcache *c, const char *operation_id)
{
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)operation_id; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return (size_t)h & c->mask;
}

static pthread_mutex_t *lock_of(struct opcache *c, size_t slot)
{
  return &c->locks[slot % SHARDS];
}

void opcache_put(struct opcache *c, const char *operation_id,
                 const char *registration_id, const char *credential,
                 int64_t reuse_until_s, const char *body_json,
                 int64_t now_ms)
{
  size_t op_len = strlen(operation_id), reg_len = strlen(registration_id);
  if (!c || !credential || op_len >= OP_ID_MAX || reg_len >= REG_ID_MAX)
    return;
  char *body = strdup(body_json);
  if (!body)
    return;
  unsigned char hash[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)credential, strlen(credential), hash);
  size_t slot = slot_of(c, operation_id);
  struct entry *e = &c->slots[slot];
  pthread_mutex_lock(lock_of(c, slot));
  free(e->body);
  memcpy(e->operation_id, operation_id, op_len + 1);
  memcpy(e->registration_id, registration_id, reg_len + 1);
  memcpy(e->credential_hash, hash, sizeof(hash));
  e->reuse_until_s = reuse_until_s;
  e->expires_ms = now_ms + c->ttl_ms;
  e->body = body;
  pthread_mutex_unlock(lock_of(c, slot));
}

char *opcache_get(struct opcache *c, const char *operation_id,
                  const char *registration_id, const char *credential,
                  int64_t now_ms)
{
  if (!c || !credential)
    return NULL;
  unsigned char hash[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)credential, strlen(credential), hash);
  size_t slot = slot_of(c, operation_id);
  struct entry *e = &c->slots[slot];
  char *answer = NULL;
  pthread_mutex_lock(lock_of(c, slot));
  if (e->body && e->expires_ms >= now_ms &&
      e->reuse_until_s >= now_ms / 1000 &&
      strcmp(e->operation_id, operation_id) == 0 &&
      strcasecmp(e->registration_id, registration_id) == 0 &&
      CRYPTO_memcmp(e->credential_hash, hash, sizeof(hash)) == 0)
    answer = strdup(e->body);
  pthread_mutex_unlock(lock_of(c, slot));
  return answer;
}
