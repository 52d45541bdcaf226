/* libFuzzer target over what the TPM attestation plugin reads around the
 * key structures fuzz_tpm_keys covers (plugins/attestation-tpm/tpm.c,
 * compiled into this file to reach its statics): the device body's
 * base64 tpm.endorsementKey / tpm.storageRootKey, the enrollment's
 * endorsementKey, the challenge session bytes the core hands back
 * (session_unpack) and the device's SAS token signed with the activated
 * key, through both rounds of tpm_attest with the real host API.
 * Input: flags byte (bit 0: a session follows, bit 1: it was answered
 * already) || [SESSION_BYTES of session] || token \0 device body JSON \0
 * enrolled endorsementKey (base64).  Seeds hold swtpm keys and a token
 * signed with the session's key.
 * Besides "no crash, no leak" it checks the contract: a challenge only
 * without a token, with a JSON object holding authenticationKey and
 * session bytes that unpack with the fixed time plus the lifetime; an
 * acceptance only with a token and an unexpired, unanswered session; a
 * refusal carries a reason code; nothing is left in the result on a
 * refusal but what the host keeps. */
#include "tpm.c"

#include <jansson.h>

#include "plugin/loader.h"
#include "util/err.h"

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1798761600
static const char ID_SCOPE[] = "0ne00000000";
static const char REG_ID[] = "fuzz-device-01";

static void check_challenge(const struct tpm_plugin *t,
                            const struct provd_attest_result *res)
{
  json_t *c = json_loads(res->challenge_json, JSON_REJECT_DUPLICATES, NULL);
  require(json_is_string(json_object_get(c, "authenticationKey")));
  json_decref(c);
  struct session s;
  require(session_unpack(res->session, res->session_len, &s) == 0);
  require(s.expires_unix == FUZZ_NOW + t->lifetime_s);
}

static void check_outcome(const struct tpm_plugin *t, int rc,
                          const struct provd_attest_request *req,
                          const struct provd_attest_result *res,
                          const struct provd_err *err)
{
  int has_token = req->authorization[0] != '\0';
  struct session s;
  int session_ok = session_unpack(req->session, req->session_len, &s) == 0;
  if (rc == PROVD_CHALLENGE) {
    require(!has_token);
    check_challenge(t, res);
  } else if (rc == PROVD_OK) {
    require(has_token && session_ok && FUZZ_NOW <= s.expires_unix &&
            !req->session_answered);
    require(res->reuse_until_s <= s.expires_unix);
  } else {
    require(rc == PROVD_DENIED || rc == PROVD_E_CONFIG);
    require(err->code[0] != '\0' && err->msg[0] != '\0');
    require(res->challenge_json == NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct tpm_plugin *t;
  if (!t) {
    struct provd_err err;
    require(tpm_create(host_api(), NULL, (void **)&t, &err) == PROVD_OK);
  }
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  size_t at = 1;
  uint8_t *session = NULL;
  size_t session_len = 0;
  if ((flags & 1) && size - at >= SESSION_BYTES) {
    session = malloc(SESSION_BYTES);
    require(session != NULL);
    memcpy(session, data + at, SESSION_BYTES);
    session_len = SESSION_BYTES;
    at += SESSION_BYTES;
  }
  char *token = fuzz_next_part(data, size, &at);
  char *body_text = fuzz_next_part(data, size, &at);
  char *enrolled_ek = fuzz_next_part(data, size, &at);
  json_t *body = json_loads(body_text, JSON_REJECT_DUPLICATES, NULL);
  json_t *enrollment = json_pack("{s:s,s:{s:s,s:{s:s}}}", "registrationId",
                                 REG_ID, "attestation", "type", "tpm", "tpm",
                                 "endorsementKey", enrolled_ek);
  if (!enrollment) /* not UTF-8: an enrollment without a readable key */
    enrollment = json_pack("{s:s,s:{s:s}}", "registrationId", REG_ID,
                           "attestation", "type", "tpm");
  require(enrollment != NULL);
  struct provd_attest_request req = {
      .struct_size = sizeof(req),
      .id_scope = ID_SCOPE,
      .registration_id = REG_ID,
      .mechanism = "tpm",
      .enrollment = cfg_from_json(enrollment),
      .enrollment_id = REG_ID,
      .authorization = token,
      .body = body ? cfg_from_json(body) : NULL,
      .now_unix = FUZZ_NOW,
      .session = session,
      .session_len = session_len,
      .session_answered = (flags & 2) != 0,
  };
  struct provd_attest_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err;
  perr_clear(&err);
  struct provd_call call;
  memset(&call, 0, sizeof(call));
  int rc = tpm_attest(t, &call, &req, &res, &err);
  check_outcome(t, rc, &req, &res, &err);
  attest_result_clear(&res);
  json_decref(enrollment);
  json_decref(body);
  free(token);
  free(body_text);
  free(enrolled_ek);
  free(session);
  return 0;
}
