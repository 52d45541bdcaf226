/* SharedAccessSignature tokens (DPS device and service tokens) and the
 * group enrollment key derivation.  The codecs they use live in
 * util/b64.h and util/url.h. */
#ifndef CORE_UTIL_SAS_H
#define CORE_UTIL_SAS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SAS_MAX_TOKEN 4096

/* A parsed token.  String fields point into buf. */
struct sas_token {
  char buf[SAS_MAX_TOKEN];
  const char *sr_raw; /* exactly as in the token (the signed bytes) */
  const char *sig;    /* URL-decoded base64 */
  const char *se_raw; /* exactly as in the token */
  const char *skn;    /* URL-decoded; NULL when absent */
  int64_t se;         /* expiry, Unix seconds */
};

/* Parses "SharedAccessSignature sr=..&sig=..&se=..&skn=.." (fields in any
 * order, names case-insensitive).  On failure sets err to
 * "MALFORMED_TOKEN" with a message and returns -1. */
int sas_parse(const char *text, struct sas_token *out,
              struct provd_err *err);
/* 1 when base64(HMAC-SHA256(key, sr_raw "\n" se_raw)) equals sig,
 * compared in constant time; 0 otherwise. */
int sas_signature_ok(const struct sas_token *t, const uint8_t *key,
                     size_t key_len);
/* sas_signature_ok over the token's raw fields: sr and se exactly as
 * sent, sig as base64. */
int sas_signature_matches(const char *sr_raw, const char *se_raw,
                          const char *sig_b64, const uint8_t *key,
                          size_t key_len);
/* 1 when the URL-decoded sr equals `resource` ignoring ASCII case. */
int sas_resource_is(const struct sas_token *t, const char *resource);
/* 1 when se + skew_s < now. */
int sas_expired(const struct sas_token *t, int64_t now, int64_t skew_s);
/* The same for an expiry se (at most 18 digits). */
int sas_expiry_passed(int64_t se, int64_t now, int64_t skew_s);

/* 1 when an expiry se lies more than max_lifetime_s (+ skew_s, for a
 * signer whose clock runs ahead) after now: a token that lives longer
 * than the server allows. */
int sas_expiry_too_far(int64_t se, int64_t now, int64_t max_lifetime_s,
                       int64_t skew_s);

/* Builds "SharedAccessSignature sr=<url-encoded resource>&sig=..&se=..
 * [&skn=..]" signed with key.  Caller frees. */
char *sas_build(const char *resource, const uint8_t *key, size_t key_len,
                int64_t expiry, const char *skn);

/* Computes HMAC-SHA256 of the string to sign (msg, len bytes) into mac;
 * 0, or -1 when it cannot. */
typedef int (*sas_sign_fn)(void *ud, const uint8_t *msg, size_t len,
                           uint8_t mac[32]);
/* sas_build with the HMAC computed by sign, for keys held elsewhere (a
 * TPM).  Caller frees; NULL when sign fails or on bad input. */
char *sas_build_signed(const char *resource, int64_t expiry, const char *skn,
                       sas_sign_fn sign, void *ud);

/* Group enrollment device key: base64(HMAC-SHA256(base64dec(group key),
 * registration id)).  out gets at least 45 bytes.  -1 on bad base64. */
int sas_derive_device_key(const char *group_key_b64,
                          const char *registration_id, char *out,
                          size_t out_len);

#endif
