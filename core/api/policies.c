/* The service API's shared access policies: the data dir's owner policy
 * (its connection string file) and the configured `service_policies:`.
 * The table in force is replaced whole on SIGHUP; a worker that found a
 * policy in an older table may still be checking a signature with it, so
 * replaced tables live until the context is cleared at exit (a few
 * hundred bytes per reload). */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "tls/pki.h"
#include "util/b64.h"
#include "util/connstr.h"
#include "util/log.h"

static void table_free(struct policy_table *t)
{
  if (!t)
    return;
  OPENSSL_cleanse(t->p, t->n * sizeof(t->p[0]));
  free(t);
}

static int owner_policy_from(const struct connstr *cs, const char *path,
                             struct service_policy *p, struct provd_err *err)
{
  if (strlen(cs->key_name) >= sizeof(p->name)) {
    perr_set(err, "CONFIG", "%s: SharedAccessKeyName too long", path);
    return -1;
  }
  snprintf(p->name, sizeof(p->name), "%s", cs->key_name);
  p->permissions = PERM_ALL; /* DPS's provisioningserviceowner */
  if (b64_decode(cs->key, p->key, sizeof(p->key), &p->key_len) != 0) {
    perr_set(err, "CONFIG", "%s: SharedAccessKey is not valid base64", path);
    return -1;
  }
  return 0;
}

/* The service host names what tokens are for: fixed once serving. */
static int take_service_host(struct api_ctx *ctx, const struct connstr *cs,
                             const char *path, struct provd_err *err)
{
  if (strlen(cs->host) >= sizeof(ctx->service_host)) {
    perr_set(err, "CONFIG", "%s: HostName too long", path);
    return -1;
  }
  if (!ctx->service_host[0])
    snprintf(ctx->service_host, sizeof(ctx->service_host), "%s", cs->host);
  else if (strcasecmp(ctx->service_host, cs->host) != 0)
    log_warn("provd", "%s: HostName changed to %s; tokens keep naming %s "
                      "until a restart", path, cs->host, ctx->service_host);
  return 0;
}

static int configured_policy(const struct cfg_policy *c,
                             struct service_policy *p, struct provd_err *err)
{
  snprintf(p->name, sizeof(p->name), "%s", c->name);
  p->permissions = c->permissions;
  if (b64_decode(c->key, p->key, sizeof(p->key), &p->key_len) != 0) {
    perr_set(err, "CONFIG", "service policy %s: key is not valid base64",
             p->name);
    return -1;
  }
  return 0;
}

static struct policy_table *table_build(struct api_ctx *ctx,
                                        const char *conn_string_path,
                                        const struct provd_config *cfg,
                                        struct provd_err *err)
{
  struct policy_table *t =
      calloc(1, sizeof(*t) + (cfg->n_policies + 1) * sizeof(t->p[0]));
  if (!t) {
    perr_set(err, "INTERNAL", "out of memory");
    return NULL;
  }
  t->n = cfg->n_policies + 1;
  struct connstr cs;
  int rc = pki_read_connection_string(conn_string_path, &cs, err);
  if (rc == 0)
    rc = take_service_host(ctx, &cs, conn_string_path, err);
  if (rc == 0)
    rc = owner_policy_from(&cs, conn_string_path, &t->p[0], err);
  OPENSSL_cleanse(&cs, sizeof(cs));
  for (size_t i = 0; rc == 0 && i < cfg->n_policies; i++)
    rc = configured_policy(&cfg->policies[i], &t->p[i + 1], err);
  if (rc != 0) {
    table_free(t);
    return NULL;
  }
  return t;
}

int api_policies_load(struct api_ctx *ctx, const char *conn_string_path,
                      const struct provd_config *cfg, struct provd_err *err)
{
  struct policy_table *t = table_build(ctx, conn_string_path, cfg, err);
  if (!t)
    return -1;
  struct policy_table *old = (struct policy_table *)atomic_exchange_explicit(
      &ctx->policies, t, memory_order_acq_rel);
  if (old) {
    old->retired_next = ctx->retired_policies;
    ctx->retired_policies = old;
  }
  return 0;
}

const struct service_policy *api_policy_find(const struct api_ctx *ctx,
                                             const char *name)
{
  const struct policy_table *t =
      atomic_load_explicit(&ctx->policies, memory_order_acquire);
  for (size_t i = 0; t && name && i < t->n; i++) {
    if (strcasecmp(t->p[i].name, name) == 0)
      return &t->p[i];
  }
  return NULL;
}

void api_policies_clear(struct api_ctx *ctx)
{
  table_free((struct policy_table *)atomic_exchange(&ctx->policies, NULL));
  while (ctx->retired_policies) {
    struct policy_table *next = ctx->retired_policies->retired_next;
    table_free(ctx->retired_policies);
    ctx->retired_policies = next;
  }
}
