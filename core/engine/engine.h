/* The registration engine: one code path for every device transport.
 *
 *   authenticate  (find the enrollment, individual first, then groups;
 *                  the attestation plugin for the mechanism checks proof)
 *   allocate      (the allocation plugin of the enrollment's policy picks
 *                  a hub among the enrollment's candidates)
 *   record        (registration state + outbox event, one transaction)
 *
 * Reads and plugin calls run on store reader threads, the record on the
 * store writer; callers get the outcome through a callback on one of those
 * threads and never block. */
#ifndef CORE_ENGINE_ENGINE_H
#define CORE_ENGINE_ENGINE_H

#include <jansson.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "plugin/loader.h"
#include "store/store.h"

struct engine;

enum reg_op {
  REG_REGISTER = 1,         /* PUT .../register */
  REG_OPERATION_STATUS = 2, /* GET .../operations/{operationId} */
  REG_STATUS_LOOKUP = 3,    /* POST /{scope}/registrations/{regId} */
  /* Dry run for operators (service API POST /explain/{regId}): what a
   * registration would get, or why it would fail; nothing is written.
   * With an authorization the device proof is checked too; without one
   * only the individual enrollment is considered. */
  REG_EXPLAIN = 4,
  /* The device's proof only, as a register would check it (MQTT CONNECT):
   * 200 with an empty document, or the refusal; nothing is written and
   * no challenge round starts. */
  REG_AUTHENTICATE = 5
};

/* What authenticating a device (REG_AUTHENTICATE) read: its individual
 * enrollment, or that it has none, with the store's change number of the
 * enrollments (store_generation) taken before the read.  A transport
 * keeps it for the connection and hands a copy to each later request
 * (reg_request.known): the engine then uses that enrollment instead of
 * reading and parsing it again, as long as the number is unchanged.  The
 * device's proof (token, certificate) is checked again either way. */
struct engine_known;
struct engine_known *engine_known_dup(const struct engine_known *k);
void engine_known_free(struct engine_known *take);

/* What a transport hands over; the engine takes ownership. */
struct reg_request {
  enum reg_op op;
  char registration_id[129];
  char operation_id[128];   /* REG_OPERATION_STATUS */
  char *authorization;      /* SAS token or NULL; owned */
  json_t *body;             /* request body object or NULL; owned */
  char *peer_chain_pem;     /* TLS client chain or NULL; owned */
  STACK_OF(X509) *peer_chain; /* the same, parsed, or NULL; owned */
  char trace_id[40];
  int call_webhook;         /* REG_EXPLAIN: call custom webhooks too */
  char client_ip[48];       /* the device's IP address, no port; "" unknown */
  struct engine_known *known; /* from this connection's REG_AUTHENTICATE,
                                 or NULL; owned */
};

/* The answer in wire terms.  Success: http_status and body_text (the
 * document already serialized; the callback owns it).  A challenge round
 * (PROVD_CHALLENGE, the TPM flow) is answered the same way with
 * http_status 401 and the plugin's document, error_code 0.  Refusal:
 * reason, http_status and error_code from net/wire_error.h, body_text
 * NULL: the transport shapes the error answer. */
struct reg_outcome {
  int http_status;
  int error_code;          /* DPS errorCode; 0 on success */
  char reason[64];         /* reason code ("" on success) */
  char *body_text;         /* success document; owned by the callback */
  int retry_after_s;       /* > 0: send Retry-After */
  /* REG_AUTHENTICATE accepted: what it read, for the connection's later
   * requests, or NULL; owned by the callback (engine_known_free). */
  struct engine_known *known;
};

typedef void (*engine_done_fn)(void *ud, struct reg_outcome *outcome);

int engine_new(const struct provd_config *cfg, struct store *store,
               struct plugin_set *plugins, struct engine **out,
               struct provd_err *err);
void engine_free(struct engine *e);

struct issuer_set;
/* Certificate issuers for CSRs in register bodies (tls/issuer.h); they
 * must outlive the engine.  Without them a CSR is CSR_NOT_CONFIGURED. */
/* 1 when an allocation plugin implements policy (case-insensitive). */
int engine_allocation_policy_known(const struct engine *e, const char *policy);

void engine_set_issuers(struct engine *e, const struct issuer_set *borrow);

/* The Retry-After of 202 answers from now on (config reload); any
 * thread. */
void engine_set_retry_after(struct engine *e, int seconds);

/* Replaces the linked hubs for later registrations (see engine/hubs.h);
 * any thread. */
struct alloc_hub;
/* The name of the linked hub called or reached at `text`, or NULL; the
 * string lives as long as the engine. */
const char *engine_hub_name(const struct engine *e, const char *text);
int engine_set_hubs(struct engine *e, const struct alloc_hub *hubs, size_t n,
                    struct provd_err *err);
/* Hub `name` down (0) or back up (1); allocations skip it while down. */
void engine_set_hub_health(struct engine *e, const char *name, int healthy);

/* Takes req (freed by the engine).  done runs exactly once: on a store
 * thread, or on the caller's thread when a status poll is answered from
 * the recent-operations cache (opcache.h) or the store refuses the work. */
void engine_submit(struct engine *e, struct reg_request *req,
                   engine_done_fn done, void *ud);
void reg_request_free(struct reg_request *req);

#endif
