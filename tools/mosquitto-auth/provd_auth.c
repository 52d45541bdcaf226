/* provd_auth: a mosquitto 2.x plugin (plugin API v5) that authenticates
 * and authorises devices the way IoT Hub does, for the devices provd
 * assigned to this broker's hub (docs/hubs.md):
 *
 *   client id  the device id
 *   username   {hub}/{deviceId}/?api-version=...   (anything after the
 *              second '/' is the SDK's business)
 *   password   SharedAccessSignature over {hub}/devices/{deviceId} signed
 *              with the device key, not expired; or no password and a TLS
 *              client certificate whose SHA-1/SHA-256 thumbprint matches
 *   topics     devices/{deviceId}/... only, for publish and subscribe
 *
 * The identities come from the file the hub-mosquitto connector writes
 * (plugin_opt_identities).  It is re-read when it changed (checked on
 * every connect and every tick); a device that is no longer there, or
 * whose key changed, is disconnected.  Usernames of any other shape are
 * left to the broker's other mechanisms (password_file, acl_file, other
 * plugins): this plugin answers MOSQ_ERR_PLUGIN_DEFER for them. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "identities.h"
#include "util/b64.h"
#include "util/sas.h"

#define PLUGIN_API 5
/* The three symbols the broker looks up; everything else stays hidden. */
#define BROKER_ENTRY __attribute__((visibility("default")))
#define MAX_KICKS 4096

struct auth {
  mosquitto_plugin_id_t *pid;
  char *path;
  struct ident_table table;
  struct stat seen; /* of the file loaded; st_ino 0: none yet */
  int read_failed;  /* said so once; quiet until a read works again */
  /* Device ids to disconnect at the next tick (not inside another
   * client's auth callback). */
  char **kicks;
  size_t n_kicks;
};

/* ---- the identities file ---- */

static int same_file(const struct stat *a, const struct stat *b)
{
  return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
         a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void queue_kick(struct auth *a, const char *device_id)
{
  if (a->n_kicks >= MAX_KICKS)
    return;
  char *id = strdup(device_id);
  if (id)
    a->kicks[a->n_kicks++] = id;
}

/* Every device of old that fresh drops or changes loses its session. */
static void queue_kicks(struct auth *a, const struct ident_table *old,
                        const struct ident_table *fresh)
{
  for (size_t i = 0; i < old->n; i++) {
    const struct ident *now = ident_find(fresh, old->items[i].device_id);
    if (!now || !ident_same(now, &old->items[i]))
      queue_kick(a, old->items[i].device_id);
  }
}

static void reload_if_changed(struct auth *a)
{
  struct stat st;
  if (stat(a->path, &st) != 0)
    memset(&st, 0, sizeof(st));
  if (same_file(&st, &a->seen))
    return;
  struct ident_table fresh;
  if (ident_table_load(a->path, &fresh) != 0) {
    if (!a->read_failed)
      mosquitto_log_printf(MOSQ_LOG_WARNING, "provd_auth: cannot read %s "
                           "(%s); keeping the %zu identities loaded before",
                           a->path, strerror(errno), a->table.n);
    a->read_failed = 1;
    return;
  }
  a->read_failed = 0;
  queue_kicks(a, &a->table, &fresh);
  ident_table_free(&a->table);
  a->table = fresh;
  a->seen = st;
  mosquitto_log_printf(MOSQ_LOG_INFO, "provd_auth: %zu device identities "
                       "from %s", a->table.n, a->path);
}

/* ---- who is asking ---- */

/* "{hub}/{deviceId}/..." into hub and device; 0, or -1 for a username of
 * another shape. */
static int split_username(const char *user, char *hub, char *device,
                          size_t cap)
{
  const char *s1 = user ? strchr(user, '/') : NULL;
  const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
  if (!s2 || s1 == user || s2 == s1 + 1)
    return -1;
  size_t hl = (size_t)(s1 - user), dl = (size_t)(s2 - s1 - 1);
  if (hl >= cap || dl >= cap || strncmp(s2 + 1, "?api-version=", 13) != 0)
    return -1;
  memcpy(hub, user, hl);
  hub[hl] = '\0';
  memcpy(device, s1 + 1, dl);
  device[dl] = '\0';
  return 0;
}

static int sas_ok(const struct ident *id, const char *hub,
                  const char *password)
{
  struct sas_token *t = malloc(sizeof(*t));
  struct provd_err err;
  char resource[2 * IDENT_FIELD_MAX + 16];
  uint8_t key[128];
  size_t key_len = 0;
  snprintf(resource, sizeof(resource), "%s/devices/%s", hub, id->device_id);
  int ok = t && id->key_b64[0] && sas_parse(password, t, &err) == 0 &&
           !t->skn && sas_resource_is(t, resource) &&
           !sas_expired(t, (int64_t)time(NULL), 0) &&
           b64_decode(id->key_b64, key, sizeof(key), &key_len) == 0 &&
           sas_signature_ok(t, key, key_len);
  OPENSSL_cleanse(key, sizeof(key));
  free(t);
  return ok;
}

/* The client certificate's SHA-1 or SHA-256 thumbprint (hex, any case)
 * is the one provd pushed. */
static int thumbprint_ok(const struct ident *id, struct mosquitto *client)
{
  X509 *cert = id->thumbprint[0] ? mosquitto_client_certificate(client)
                                 : NULL;
  if (!cert)
    return 0;
  const EVP_MD *md = strlen(id->thumbprint) == 40 ? EVP_sha1() : EVP_sha256();
  unsigned char dg[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  int ok = X509_digest(cert, md, dg, &n) == 1;
  X509_free(cert);
  for (unsigned int i = 0; ok && i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", dg[i]);
  return ok && strlen(id->thumbprint) == 2 * n &&
         strcasecmp(hex, id->thumbprint) == 0;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
  (void)event;
  struct mosquitto_evt_basic_auth *ev = event_data;
  struct auth *a = userdata;
  char hub[IDENT_FIELD_MAX], device[IDENT_FIELD_MAX];
  if (split_username(ev->username, hub, device, sizeof(hub)) != 0)
    return MOSQ_ERR_PLUGIN_DEFER;
  reload_if_changed(a);
  const struct ident *id = ident_find(&a->table, device);
  const char *client_id = mosquitto_client_id(ev->client);
  int ok = id && client_id && strcmp(client_id, device) == 0 &&
           strcasecmp(hub, id->hub) == 0 &&
           (ev->password ? sas_ok(id, hub, ev->password)
                         : thumbprint_ok(id, ev->client));
  mosquitto_log_printf(ok ? MOSQ_LOG_INFO : MOSQ_LOG_NOTICE,
                       "provd_auth: device %s %s (%s)", device,
                       ok ? "connected" : "refused",
                       !id ? "not provisioned on this hub"
                       : !client_id || strcmp(client_id, device) != 0
                           ? "client id is not the device id"
                       : strcasecmp(hub, id->hub) != 0 ? "another hub"
                       : ok ? (ev->password ? "SAS token" : "certificate")
                            : "bad, expired or foreign credential");
  return ok ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
}

/* devices/{deviceId}/... and nothing else. */
static int topic_is_own(const char *topic, const char *device)
{
  size_t n = strlen(device);
  return strncmp(topic, "devices/", 8) == 0 &&
         strncmp(topic + 8, device, n) == 0 && topic[8 + n] == '/';
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
  (void)event;
  struct mosquitto_evt_acl_check *ev = event_data;
  struct auth *a = userdata;
  char hub[IDENT_FIELD_MAX], device[IDENT_FIELD_MAX];
  if (split_username(mosquitto_client_username(ev->client), hub, device,
                     sizeof(hub)) != 0)
    return MOSQ_ERR_PLUGIN_DEFER;
  const char *client_id = mosquitto_client_id(ev->client);
  int ok = client_id && strcmp(client_id, device) == 0 &&
           ident_find(&a->table, device) && topic_is_own(ev->topic, device);
  return ok ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

static int on_tick(int event, void *event_data, void *userdata)
{
  (void)event;
  (void)event_data;
  struct auth *a = userdata;
  reload_if_changed(a);
  for (size_t i = 0; i < a->n_kicks; i++) {
    mosquitto_log_printf(MOSQ_LOG_INFO, "provd_auth: device %s is no longer "
                         "provisioned here (or its key changed): "
                         "disconnected", a->kicks[i]);
    mosquitto_kick_client_by_clientid(a->kicks[i], false);
    free(a->kicks[i]);
  }
  a->n_kicks = 0;
  return MOSQ_ERR_SUCCESS;
}

/* ---- plugin entry points ---- */

BROKER_ENTRY int mosquitto_plugin_version(int supported_version_count,
                             const int *supported_versions)
{
  for (int i = 0; i < supported_version_count; i++)
    if (supported_versions[i] == PLUGIN_API)
      return PLUGIN_API;
  return -1;
}

static void auth_free(struct auth *a)
{
  if (!a)
    return;
  for (size_t i = 0; i < a->n_kicks; i++)
    free(a->kicks[i]);
  free(a->kicks);
  ident_table_free(&a->table);
  free(a->path);
  free(a);
}

BROKER_ENTRY int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
  struct auth *a = calloc(1, sizeof(*a));
  if (!a || !(a->kicks = calloc(MAX_KICKS, sizeof(*a->kicks)))) {
    auth_free(a);
    return MOSQ_ERR_NOMEM;
  }
  for (int i = 0; i < option_count; i++)
    if (strcmp(options[i].key, "identities") == 0 && !a->path)
      a->path = strdup(options[i].value);
  if (!a->path) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "provd_auth: plugin_opt_identities "
                         "FILE is required (the hub-mosquitto connector's "
                         "identities_file)");
    auth_free(a);
    return MOSQ_ERR_INVAL;
  }
  a->pid = identifier;
  reload_if_changed(a);
  *userdata = a;
  if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH,
                                  on_basic_auth, NULL, a) ||
      mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK,
                                  on_acl_check, NULL, a) ||
      mosquitto_callback_register(identifier, MOSQ_EVT_TICK, on_tick, NULL,
                                  a))
    return MOSQ_ERR_UNKNOWN;
  return MOSQ_ERR_SUCCESS;
}

BROKER_ENTRY int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                             int option_count)
{
  (void)options;
  (void)option_count;
  struct auth *a = userdata;
  if (a && a->pid) {
    mosquitto_callback_unregister(a->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth,
                                  NULL);
    mosquitto_callback_unregister(a->pid, MOSQ_EVT_ACL_CHECK, on_acl_check,
                                  NULL);
    mosquitto_callback_unregister(a->pid, MOSQ_EVT_TICK, on_tick, NULL);
  }
  auth_free(a);
  return MOSQ_ERR_SUCCESS;
}
