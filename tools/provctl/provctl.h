/* provctl internals shared by its source files: the parsed command line,
 * the service connection, output helpers and the command handlers. */
#ifndef TOOLS_PROVCTL_H
#define TOOLS_PROVCTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "https.h"
#include "util/err.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1  /* server said no, not found, network error */
#define CTL_EXIT_USAGE 2

#define CTL_DEFAULT_URL "https://localhost:8443"
#define CTL_DEFAULT_DATA_DIR "var"
#define CTL_API_VERSION "2021-10-01"
#define CTL_MAX_ARGS 4
#define CTL_MAX_HUBS 32
#define CTL_MAX_LIMIT 1000000L
#define CTL_PAGE_SIZE 100

/* One bit per option, so each command can say which ones it takes. */
enum ctl_opt {
  CO_URL, CO_DATA_DIR, CO_CONN_STR, CO_CA, CO_JSON, CO_HELP, CO_VERSION,
  CO_DEVICE_ID, CO_PRIMARY_KEY, CO_SECONDARY_KEY, CO_HUB, CO_ALLOCATION,
  CO_WEBHOOK_URL, CO_WEBHOOK_API, CO_DISABLED, CO_INITIAL_TWIN,
  CO_NO_REPROVISION, CO_FORCE, CO_SHOW_KEYS, CO_LIMIT, CO_ETAG, CO_GROUP,
  CO_KEY, CO_SECONDARY, CO_AFTER, CO_PAYLOAD, CO_SCOPE, CO_SYMMETRIC_KEY,
  CO_GROUP_KEY, CO_ATTESTATION, CO_CERT, CO_SECONDARY_CERT, CO_CA_CERT,
  CO_CA_REF, CO_CRL, CO_PROOF, CO_CREDENTIAL_POLICY, CO_ENDORSEMENT_KEY,
  CO_REGISTRATION_ID, CO_CALL_WEBHOOK, CO_HOSTNAME, CO_WEIGHT, CO_REGION,
  CO_APPLY_POLICY, CO_PASSPHRASE_FILE, CO_KEYS_ONLY, CO_COUNT_
};
#define CO_BIT(o) (UINT64_C(1) << (o))
#define CO_GLOBAL (CO_BIT(CO_URL) | CO_BIT(CO_DATA_DIR) | CO_BIT(CO_CONN_STR) \
                   | CO_BIT(CO_CA) | CO_BIT(CO_JSON) | CO_BIT(CO_HELP)     \
                   | CO_BIT(CO_VERSION))

/* The command line.  Strings are borrowed from argv. */
struct ctl_opts {
  uint64_t given;                 /* CO_BIT of every option seen */
  const char *value[CO_COUNT_];   /* last value of each valued option */
  const char *hubs[CTL_MAX_HUBS]; /* every --hub, in order */
  size_t n_hubs;
  const char *args[CTL_MAX_ARGS + 2]; /* positionals, command words too */
  size_t n_args;
  long limit;                     /* 0: no limit */
  int64_t after;                  /* --after; -1 when absent */
  int weight;                     /* --weight 0..1000 */
  int apply_policy;               /* --apply-allocation-policy true|false */
};

struct ctl_command;

/* Everything a command handler needs. */
struct ctl {
  struct ctl_opts opts;
  const struct ctl_command *cmd;
  const char *const *args;  /* positionals after the command words */
  size_t n_args;
  struct https_client *http; /* NULL until the first request */
  char *token;               /* service SAS; owned */
};

/* The answer of a service call. */
struct ctl_reply {
  long status;               /* 0 when no answer arrived */
  json_t *json;              /* parsed body or NULL; owned */
  char etag[256];
  char continuation[2048];
};

static inline int ctl_has(const struct ctl *c, enum ctl_opt o)
{
  return (c->opts.given & CO_BIT(o)) != 0;
}

static inline const char *ctl_value(const struct ctl *c, enum ctl_opt o)
{
  return c->opts.value[o];
}

/* service.c */
int ctl_connect(struct ctl *c, struct provd_err *err);
void ctl_disconnect(struct ctl *c);
/* "/<collection>[/<id>][/<suffix>]?api-version=..[&<query>]", with id
 * percent-encoded.  -1 when it does not fit. */
int ctl_path(char *out, size_t cap, const char *collection, const char *id,
             const char *suffix, const char *query);
/* One request (connecting first if needed).  body is borrowed.  0 on a
 * 2xx answer; otherwise -1 with err describing the HTTP or network error
 * (reply->status says which).  Release reply with ctl_reply_clear. */
int ctl_call(struct ctl *c, const char *method, const char *path,
             json_t *body, const char *const *headers, size_t n_headers,
             struct ctl_reply *reply, struct provd_err *err);
void ctl_reply_clear(struct ctl_reply *r);
/* The request as it is (authorization set here), answer body untouched:
 * 0 on a 2xx answer, else -1 as ctl_call.  Clear rs in both cases. */
int ctl_request(struct ctl *c, struct https_request *rq,
                struct https_response *rs, struct provd_err *err);
/* DELETE path (with If-Match when --etag was given) and report it:
 * "removed <noun> <id>", or {"<id_field>": id, "removed": true} with
 * --json.  A 404 says "<noun> <id> not found".  Returns the exit code. */
int ctl_remove(struct ctl *c, const char *path, const char *noun,
               const char *id_field, const char *id);
/* Follows x-ms-continuation until done or `limit` items (0: no limit)
 * and returns all items in *items (caller decrefs). */
int ctl_collect(struct ctl *c, const char *method, const char *path,
                json_t *body, long limit, json_t **items,
                struct provd_err *err);
/* Reads a whole small text file into out (trailing white space
 * dropped).  -1 with errno set. */
int ctl_read_small_file(const char *path, char *out, size_t cap);

/* output.c */
void out_json(json_t *doc);       /* one compact document + newline */
void out_field(const char *label, const char *value);
void out_field_json(const char *label, json_t *value);
const char *out_str(json_t *obj, const char *key, const char *fallback);
/* A column-aligned table; cells are copied. */
struct out_table;
struct out_table *out_table_new(size_t n_cols, const char *const *headers);
void out_table_row(struct out_table *t, const char *const *cells);
void out_table_print_free(struct out_table *t);
/* Replaces symmetric keys inside an attestation with "****". */
void out_mask_keys(json_t *attestation);
/* "a, b, c" of a string array, or fallback; caller frees. */
char *out_join(json_t *array, const char *sep, const char *fallback);

/* cmd_enroll.c, cmd_misc.c: each returns a CTL_EXIT_* code. */
int cmd_enrollment_add(struct ctl *c);
int cmd_enrollment_show(struct ctl *c);
int cmd_enrollment_list(struct ctl *c);
int cmd_enrollment_remove(struct ctl *c);
int cmd_enrollment_enable(struct ctl *c);
int cmd_enrollment_disable(struct ctl *c);
int cmd_enrollment_import(struct ctl *c); /* cmd_import.c */
int cmd_group_add(struct ctl *c);
int cmd_group_show(struct ctl *c);
int cmd_group_list(struct ctl *c);
int cmd_group_remove(struct ctl *c);
int cmd_group_enable(struct ctl *c);
int cmd_group_disable(struct ctl *c);
int cmd_registration_show(struct ctl *c);
int cmd_registration_list(struct ctl *c);
int cmd_registration_remove(struct ctl *c);
int cmd_hub_list(struct ctl *c);
int cmd_hub_add(struct ctl *c);
int cmd_hub_set(struct ctl *c);
int cmd_hub_drain(struct ctl *c);
int cmd_hub_remove(struct ctl *c);
int cmd_explain(struct ctl *c);
int cmd_derive_key(struct ctl *c);
int cmd_events_list(struct ctl *c);
int cmd_events_show(struct ctl *c);
int cmd_events_retry(struct ctl *c);
int cmd_events_verify(struct ctl *c);
int cmd_ca_add(struct ctl *c);
int cmd_ca_show(struct ctl *c);
int cmd_ca_list(struct ctl *c);
int cmd_ca_remove(struct ctl *c);
int cmd_ca_verify(struct ctl *c);
int cmd_backup(struct ctl *c); /* cmd_backup.c */

/* cmd_enroll.c: a certificate or CRL file as the service API takes it
 * (PEM text as is, DER base64-encoded).  Caller frees; NULL after a
 * usage error (*rc set to the exit code). */
char *ctl_pki_file_text(struct ctl *c, const char *flag, const char *path,
                        int *rc);

/* main.c: reporting. */
int ctl_fail(const struct provd_err *err);  /* prints, returns exit 1 */
int ctl_usage_error(const struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
