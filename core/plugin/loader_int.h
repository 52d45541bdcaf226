/* Private to core/plugin: pieces loader.c, schema.c and registry.c
 * share. */
#ifndef CORE_PLUGIN_LOADER_INT_H
#define CORE_PLUGIN_LOADER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "provd/plugin.h"
#include "util/err.h"

#define PLUGIN_NAME_MAX 32
#define PLUGIN_MAX_OPTIONS 128
#define PLUGIN_OPTION_NAME_MAX 63

/* [a-z0-9][a-z0-9_-]{0,31} */
int plugin_name_valid(const char *name);

/* Copies untrusted descriptor text for an error message: at most
 * out_len - 1 bytes, anything but printable ASCII as '?', so that a
 * broken plugin cannot split a diagnostic over several lines. */
void plugin_text_shown(char *out, size_t out_len, const char *in);

/* Checks the descriptor's option schema: snake_case names, unique,
 * described, known types, enum values present, defaults that parse as
 * their type (by the same rules config_check_options applies to YAML). */
int plugin_check_schema(const char *path, const struct provd_plugin *p,
                        struct provd_err *err);

/* Host services implemented in host_cfg.c, host_http.c and
 * host_crypto.c. */
struct provd_cfg;
struct provd_instance;
struct provd_call;
struct provd_http_req;
struct provd_http_resp;
int host_cfg_str(const struct provd_cfg *c, const char *key,
                 const char **out);
int host_cfg_int(const struct provd_cfg *c, const char *key, int64_t *out);
int host_cfg_bool(const struct provd_cfg *c, const char *key, int *out);
int host_cfg_double(const struct provd_cfg *c, const char *key,
                    double *out);
int host_cfg_child(const struct provd_cfg *c, const char *key,
                   const struct provd_cfg **out);
size_t host_cfg_count(const struct provd_cfg *c);
int host_cfg_at(const struct provd_cfg *c, size_t i,
                const struct provd_cfg **out);
const char *host_cfg_text(const struct provd_cfg *c);

#define HOST_HTTP_DEFAULT_TIMEOUT_MS 10000
#define HOST_HTTP_MAX_BODY (1024 * 1024)
int host_http_request(struct provd_instance *inst, struct provd_call *call,
                      const struct provd_http_req *req,
                      struct provd_http_resp *resp);

/* ABI minor 1 services in host_crypto.c (documented in host.h). */
struct provd_sas_token;
struct provd_sas_policy;
int host_b64_encode(const uint8_t *in, size_t in_len, char *out,
                    size_t out_cap, size_t *out_len, struct provd_err *err);
int host_b64_decode(const char *in, size_t in_len, uint8_t *out,
                    size_t out_cap, size_t *out_len, struct provd_err *err);
int host_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg,
                     size_t msg_len, uint8_t *out, size_t out_cap,
                     struct provd_err *err);
int host_sas_parse(const char *text, char *buf, size_t buf_cap,
                   struct provd_sas_token *out, struct provd_err *err);
int host_sas_check(const struct provd_sas_token *tok,
                   const struct provd_sas_policy *policy,
                   struct provd_err *err);
int host_sas_verify(const struct provd_sas_token *tok, const uint8_t *key,
                    size_t key_len, struct provd_err *err);

#endif
