/* libFuzzer target over SharedAccessSignature tokens and the encoders
 * around them (core/util/sas.c).  Besides "no crash, no out-of-bounds
 * access" it checks their contract:
 *  - a parsed token's fields lie inside its buffer, `se` is the number
 *    se_raw spells, the decoded sr is the resource the token names, and
 *    sas_expired flips exactly at se (+ skew);
 *  - re-signing the parsed resource and expiry with the fuzz key gives a
 *    token that parses back to them and verifies with that key only;
 *  - url_decode works the same in place, and what it returns re-encodes
 *    and decodes back to itself; strict base64 re-encodes to the input;
 *  - a service connection string that parses (core/util/connstr.c) has
 *    its three parts, and written out again parses to the same parts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/b64.h"
#include "util/connstr.h"
#include "util/err.h"
#include "util/sas.h"
#include "util/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key of the captured Node SDK tokens in the corpus, so the committed trace tokens reach the "signature matches" path. */
static const char FUZZ_KEY_B64[] =
    "WKjo9FDRrHYGVYaJ6OAqxFFHO6V9yicFCr21Hy9yJbc=";
static const uint8_t OTHER_KEY[32] = {1, 2, 3};

static void require(int ok)
{
  if (!ok)
    abort();
}

static int inside(const struct sas_token *t, const char *p)
{
  return p >= t->buf && p < t->buf + SAS_MAX_TOKEN &&
         memchr(p, '\0', (size_t)(t->buf + SAS_MAX_TOKEN - p)) != NULL;
}

static int64_t decimal_value(const char *s)
{
  int64_t v = 0;
  for (; *s; s++) {
    require(*s >= '0' && *s <= '9');
    v = v * 10 + (*s - '0');
  }
  return v;
}

static void check_expiry(const struct sas_token *t)
{
  require(t->se >= 0 && t->se == decimal_value(t->se_raw));
  require(!sas_expired(t, t->se, 0));
  require(sas_expired(t, t->se + 1, 0));
  require(!sas_expired(t, t->se + 300, 300));
  require(sas_expired(t, t->se + 301, 300));
}

/* Signs resource/se/skn again and checks the new token against them. */
static void check_resign(const struct sas_token *t, const char *resource,
                         const uint8_t *key, size_t key_len)
{
  char *tok = sas_build(resource, key, key_len, t->se, t->skn);
  if (!tok)
    return; /* the encoded resource no longer fits: allowed */
  struct sas_token *again = malloc(sizeof(*again));
  struct provd_err err;
  require(again != NULL);
  if (strlen(tok) < SAS_MAX_TOKEN) {
    require(sas_parse(tok, again, &err) == 0);
    require(sas_resource_is(again, resource));
    require(again->se == t->se);
    require(sas_signature_ok(again, key, key_len));
    require(!sas_signature_ok(again, OTHER_KEY, sizeof(OTHER_KEY)));
    require((t->skn == NULL) == (again->skn == NULL));
    require(!t->skn || strcmp(t->skn, again->skn) == 0);
  }
  free(again);
  free(tok);
}

static void check_token(const struct sas_token *t, const uint8_t *key,
                        size_t key_len)
{
  require(t->sr_raw && t->sig && t->se_raw);
  require(inside(t, t->sr_raw) && inside(t, t->sig) && inside(t, t->se_raw));
  require(!t->skn || inside(t, t->skn));
  require(t->sr_raw[0] && t->sig[0] && t->se_raw[0]);
  check_expiry(t);

  char *resource = malloc(SAS_MAX_TOKEN);
  require(resource != NULL);
  require(url_decode(t->sr_raw, strlen(t->sr_raw), resource,
                     SAS_MAX_TOKEN) == 0);
  require(sas_resource_is(t, resource));
  if (sas_signature_ok(t, key, key_len))
    require(!sas_signature_ok(t, OTHER_KEY, sizeof(OTHER_KEY)));
  check_resign(t, resource, key, key_len);
  free(resource);
}

static void fuzz_token(const char *text, const uint8_t *key, size_t key_len)
{
  struct sas_token *t = malloc(sizeof(*t));
  struct provd_err err;
  require(t != NULL);
  perr_clear(&err);
  if (sas_parse(text, t, &err) == 0)
    check_token(t, key, key_len);
  else
    require(strcmp(err.code, "MALFORMED_TOKEN") == 0 && err.msg[0]);
  free(t);
}

static void fuzz_url_decode(const uint8_t *data, size_t size)
{
  size_t cap = size + 1;
  char *out = malloc(cap), *in_place = malloc(cap);
  require(out && in_place);
  memcpy(in_place, data, size);
  int rc = url_decode((const char *)data, size, out, cap);
  require(url_decode(in_place, size, in_place, cap) == rc);
  if (rc == 0) {
    size_t n = strlen(out);
    require(n <= size && strcmp(out, in_place) == 0);
    size_t enc_cap = 3 * n + 1;
    char *enc = malloc(enc_cap), *back = malloc(enc_cap);
    require(enc && back);
    require(url_encode(out, enc, enc_cap) == 0);
    require(url_decode(enc, strlen(enc), back, enc_cap) == 0);
    require(strcmp(back, out) == 0);
    free(enc);
    free(back);
  }
  free(out);
  free(in_place);
}

static void fuzz_base64(const char *text)
{
  size_t len = strlen(text);
  size_t cap = len / 4 * 3 + 1;
  uint8_t *raw = malloc(cap);
  require(raw != NULL);
  size_t n = 0;
  if (b64_decode(text, raw, cap, &n) == 0) {
    require(n <= cap);
    /* Strict decoding: the canonical encoding is the input itself. */
    char *enc = b64_encode(raw, n);
    require(enc && strcmp(enc, text) == 0);
    free(enc);
    size_t m = 0;
    if (n > 0)
      require(b64_decode(text, raw, n - 1, &m) == B64_TOO_SMALL);
  }
  char derived[64];
  if (sas_derive_device_key(text, "fuzz-device-01", derived,
                            sizeof(derived)) == 0) {
    uint8_t mac[40];
    require(strlen(derived) == 44);
    require(b64_decode(derived, mac, sizeof(mac), &n) == 0 && n == 32);
  }
  free(raw);
}

/* b64_decode_n reads exactly size bytes (no NUL after them) and agrees
 * with b64_decode when the input has no NUL inside. */
static void fuzz_base64_n(const uint8_t *data, size_t size)
{
  char *exact = malloc(size ? size : 1);
  size_t cap = size / 4 * 3 + 1;
  uint8_t *raw = malloc(cap), *raw_nul = malloc(cap);
  require(exact && raw && raw_nul);
  memcpy(exact, data, size);
  size_t n = 0, m = 0;
  int rc = b64_decode_n(exact, size, raw, cap, &n);
  if (!memchr(data, '\0', size)) {
    char *text = malloc(size + 1);
    require(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    require(b64_decode(text, raw_nul, cap, &m) == rc);
    require(rc != 0 || (n == m && memcmp(raw, raw_nul, n) == 0));
    free(text);
  } else {
    require(rc != 0);
  }
  free(exact);
  free(raw);
  free(raw_nul);
}

static void fuzz_connstr(const char *text)
{
  static struct connstr cs, again;
  struct provd_err err;
  perr_clear(&err);
  if (connstr_parse(text, &cs, &err) != 0) {
    require(strcmp(err.code, "BAD_CONNECTION_STRING") == 0);
    return;
  }
  require(cs.host[0] && cs.key_name[0] && cs.key[0]);
  static char written[sizeof cs.host + sizeof cs.key_name + sizeof cs.key +
                      64];
  snprintf(written, sizeof written,
           "HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s", cs.host,
           cs.key_name, cs.key);
  require(connstr_parse(written, &again, &err) == 0);
  require(strcmp(cs.host, again.host) == 0 &&
          strcmp(cs.key_name, again.key_name) == 0 &&
          strcmp(cs.key, again.key) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint8_t key[32];
  size_t key_len = 0;
  require(b64_decode(FUZZ_KEY_B64, key, sizeof(key), &key_len) == 0);

  /* Exact-size copies, so reading one byte too far is caught. */
  char *text = malloc(size + 1);
  require(text != NULL);
  memcpy(text, data, size);
  text[size] = '\0';
  fuzz_token(text, key, key_len);
  fuzz_base64(text);
  fuzz_connstr(text);
  free(text);
  fuzz_url_decode(data, size);
  fuzz_base64_n(data, size);
  return 0;
}
