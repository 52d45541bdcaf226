/* Test plugin: the smallest challenge-round attestation, for the engine's
 * side of PROVD_CHALLENGE.  Mechanism "tpm" (the body carries "tpm").
 *   no token              -> PROVD_CHALLENGE {"nonce":"<hex>"}, session =
 *                            the 16 nonce bytes
 *   token "Nonce <hex>"   -> OK when it is the session's nonce (claim
 *                            registrationState.tpm.authenticationKey =
 *                            "answered-<hex>"),
 *                            TPM_CHALLENGE_REPLAYED when session_answered,
 *                            TPM_CHALLENGE_EXPIRED without a session,
 *                            BAD_SIGNATURE for another nonce. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provd/attest.h"
#include "provd/host.h"

#define NONCE_LEN 16

struct state {
  const struct provd_host_api *host;
};

static int ca_create(const struct provd_host_api *host,
                     struct provd_instance *inst, void **state,
                     struct provd_err *err)
{
  (void)inst;
  struct state *s = calloc(1, sizeof(*s));
  if (!s) {
    host->err_set(err, "NOMEM", "out of memory");
    return PROVD_E_NOMEM;
  }
  s->host = host;
  *state = s;
  return PROVD_OK;
}

static void ca_destroy(void *state) { free(state); }

static void hex(const uint8_t *in, size_t n, char *out)
{
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static int challenge(struct state *s, struct provd_attest_result *res)
{
  uint8_t nonce[NONCE_LEN];
  char text[2 * NONCE_LEN + 1], json[64];
  if (s->host->random(nonce, sizeof(nonce)) != PROVD_OK)
    return PROVD_E_INTERNAL;
  hex(nonce, sizeof(nonce), text);
  snprintf(json, sizeof(json), "{\"nonce\":\"%s\"}", text);
  int rc = s->host->attest_set_challenge(res, json, nonce, sizeof(nonce));
  return rc == PROVD_OK ? PROVD_CHALLENGE : rc;
}

static int ca_attest(void *state, struct provd_call *call,
                     const struct provd_attest_request *req,
                     struct provd_attest_result *res, struct provd_err *err)
{
  struct state *s = state;
  (void)call;
  if (!req->authorization)
    return challenge(s, res);
  if (!req->session || req->session_len != NONCE_LEN) {
    s->host->err_set(err, "TPM_CHALLENGE_EXPIRED", "no open challenge");
    return PROVD_DENIED;
  }
  char want[6 + 2 * NONCE_LEN + 1] = "Nonce ";
  hex(req->session, NONCE_LEN, want + 6);
  if (strcmp(req->authorization, want) != 0) {
    s->host->err_set(err, "BAD_SIGNATURE", "another nonce");
    return PROVD_DENIED;
  }
  if (req->session_answered) {
    s->host->err_set(err, "TPM_CHALLENGE_REPLAYED", "answered before");
    return PROVD_DENIED;
  }
  char tpm_state[96];
  snprintf(tpm_state, sizeof(tpm_state),
           "{\"authenticationKey\":\"answered-%s\"}", want + 6);
  return s->host->attest_set_state(res, "tpm", tpm_state);
}

static const char *const mechanisms[] = {"tpm", NULL};

static const struct provd_lifecycle lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = ca_create,
  .destroy = ca_destroy,
};

static const struct provd_attest_ops ops = {
  .struct_size = sizeof(struct provd_attest_ops),
  .mechanisms = mechanisms,
  .attest = ca_attest,
  .flags = PROVD_ATTEST_CHALLENGE_ROUNDS,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_ATTESTATION,
  .flags = PROVD_PLUGIN_THREADSAFE,
  .min_host_minor = 4,
  .name = "challenge_attest",
  .version = "1.0.0",
  .description = "Engine test: a nonce challenge round.",
  .vendor = "provd tests",
  .lifecycle = &lifecycle,
  .ops = &ops,
};
