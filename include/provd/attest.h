/* Attestation plugins: verify a device's proof of identity against the
 * enrollment the core matched.
 *
 * The core finds candidate enrollments (the individual enrollment for the
 * registration id first, then enrollment groups) whose attestation type is
 * one of the plugin's `mechanisms`, and calls attest() once per candidate
 * until one answers something other than PROVD_DECLINED.
 */
#ifndef PROVD_ATTEST_H
#define PROVD_ATTEST_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

struct provd_attest_result; /* host-owned; filled via host setters */

struct provd_attest_request {
  uint32_t struct_size;
  const char *id_scope;
  const char *registration_id;
  /* DPS attestation type of the enrollment: "symmetricKey", "x509",
   * "tpm". */
  const char *mechanism;
  /* The enrollment record as the service API stores it (DPS JSON,
   * secrets included).  Read with the host's cfg_* accessors. */
  const struct provd_cfg *enrollment;
  int is_group;                     /* enrollment is an enrollment group */
  const char *enrollment_id;        /* registrationId or enrollmentGroupId */
  /* The device's SAS token (HTTP Authorization header or MQTT password),
   * or NULL. */
  const char *authorization;
  const struct provd_cfg *body;     /* the device's request body */
  const char *client_cert_chain_pem; /* TLS peer chain, leaf first, or NULL */
  int64_t now_unix;                 /* seconds; use it, not the clock */
  /* Opaque bytes from a previous PROVD_CHALLENGE round, or NULL. */
  const uint8_t *session;
  size_t session_len;
  /* ABI minor 4 (test with PROVD_HAS): nonzero when this is a register
   * call and the challenge round `session` belongs to already completed a
   * registration, i.e. the answer is being replayed.  Status polls of
   * that registration see 0. */
  int session_answered;
  /* ABI minor 10 (test with PROVD_HAS): client_cert_chain_pem as the TLS
   * handshake parsed it, an OpenSSL STACK_OF(X509), leaf first, or NULL
   * (then parse the PEM).  Borrowed for the call: X509_chain_up_ref() to
   * keep it, never modify it.  Parsing a certificate costs tens of
   * microseconds in OpenSSL 3 (its key decoder), more than the rest of
   * an X.509 registration's checks but the signature. */
  struct stack_st_X509 *client_cert_chain;
};

/* provd_attest_ops.flags (ABI minor 4) */
/* attest() may answer PROVD_CHALLENGE: the core then keeps the round's
 * session in the store and hands it back with the device's answer. */
#define PROVD_ATTEST_CHALLENGE_ROUNDS (1u << 0)

struct provd_attest_ops {
  uint32_t struct_size;
  /* DPS attestation types handled, NULL-ended. */
  const char *const *mechanisms;
  /* Returns PROVD_OK (device authenticated; optionally set the device id
   * and claims), PROVD_DENIED with a reason code in err (BAD_SIGNATURE,
   * TOKEN_EXPIRED, ...), PROVD_CHALLENGE (set the challenge through
   * attest_set_challenge), PROVD_DECLINED (not this plugin's business), or
   * a negative error. */
  int (*attest)(void *state, struct provd_call *call,
                const struct provd_attest_request *req,
                struct provd_attest_result *res, struct provd_err *err);
  /* ABI minor 4: PROVD_ATTEST_* flags. */
  uint32_t flags;
};

#ifdef __cplusplus
}
#endif
#endif /* PROVD_ATTEST_H */
