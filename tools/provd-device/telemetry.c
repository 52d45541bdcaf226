/* Telemetry to the assigned hub (provd/device.h), as an IoT Hub device
 * talks MQTT: see "Communicate with an IoT hub using the MQTT protocol"
 * in the public Azure IoT Hub docs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "device_internal.h"
#include "mqtt_link.h"
#include "provd_device_tpm.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/sas.h"
#include "util/secret.h"

#define DEFAULT_TIMEOUT_S 30
#define TOKEN_LIFETIME_S 3600
#define MAX_MESSAGE (256u * 1024u) /* IoT Hub's device-to-cloud limit */

/* The hub's SAS token for the device (the key is the device key). */
static char *hub_token(const struct provd_device_credentials *c,
                       struct provd_err *err)
{
  uint8_t key[128];
  size_t key_len = 0;
  char resource[600];
  if (b64_decode(c->symmetric_key, key, sizeof(key), &key_len) != 0 ||
      key_len == 0) {
    perr_set(err, "BAD_INPUT", "the credentials' device key is not base64");
    return NULL;
  }
  snprintf(resource, sizeof(resource), "%s/devices/%s", c->assigned_hub,
           c->device_id);
  char *token = sas_build(resource, key, key_len,
                          (int64_t)time(NULL) + TOKEN_LIFETIME_S, NULL);
  OPENSSL_cleanse(key, sizeof(key));
  if (!token)
    perr_set(err, "NO_MEMORY", "out of memory");
  return token;
}

/* The same token, signed by the TPM the credentials file names (or tcti). */
static char *tpm_hub_token(const char *path,
                           const struct provd_device_credentials *c,
                           const char *tcti, int64_t expiry,
                           struct provd_err *err)
{
  struct credentials_tpm *kept = malloc(sizeof(*kept));
  struct device_tpm *t = NULL;
  char *token = NULL;
  if (!kept)
    perr_set(err, "NO_MEMORY", "out of memory");
  else if (credentials_load_tpm(path, kept, err) == 0 &&
           device_tpm_open(tcti ? tcti : kept->tcti, &t, err) == 0)
    token = device_tpm_hub_token(t, &kept->key, c->assigned_hub,
                                 c->device_id, expiry, err);
  device_tpm_close(t);
  free(kept);
  return token;
}

int provd_device_tpm_hub_token(const char *credentials_path,
                               const char *tpm_tcti, int64_t expiry_unix,
                               char **token_take, struct provd_err *err)
{
  struct provd_device_credentials c;
  *token_take = NULL;
  if (provd_device_credentials_load(credentials_path, &c, err) != 0)
    return -1;
  *token_take = tpm_hub_token(credentials_path, &c, tpm_tcti, expiry_unix,
                              err);
  OPENSSL_cleanse(&c, sizeof(c));
  return *token_take ? 0 : -1;
}

static int check_send_input(const struct provd_device_credentials *c,
                            const char *const *messages, size_t n,
                            double interval_s, struct provd_err *err)
{
  if (!c || !c->device_id[0] || !c->assigned_hub[0] || (n && !messages)) {
    perr_set(err, "BAD_INPUT", "credentials with a hub and a device id are "
             "required");
    return -1;
  }
  if (interval_s < 0 || interval_s > 3600) {
    perr_set(err, "BAD_INPUT", "interval must be 0..3600 seconds");
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (!messages[i] || strlen(messages[i]) > MAX_MESSAGE) {
      perr_set(err, "BAD_INPUT", "a message is missing or larger than %u "
               "bytes", MAX_MESSAGE);
      return -1;
    }
  return 0;
}

/* password: the SAS token, or NULL (X.509: the TLS client certificate). */
static struct mqtt_link *connect_hub(const struct provd_device_credentials *c,
                                     const struct provd_device_hub_opts *h,
                                     const char *password, double deadline,
                                     struct provd_err *err)
{
  char username[700];
  snprintf(username, sizeof(username), "%s/%s/?api-version=%s",
           c->assigned_hub, c->device_id, PROVD_DEVICE_HUB_API_VERSION);
  struct mqtt_link_opts o = {
      .host = h && h->host ? h->host : c->assigned_hub,
      .port = h && h->port ? h->port : PROVD_DEVICE_HUB_PORT,
      .client_id = c->device_id,
      .username = username,
      .password = password,
      .ca_file = h ? h->ca_file : NULL,
      .cert_file = c->cert_file[0] ? c->cert_file : NULL,
      .key_file = c->key_file[0] ? c->key_file : NULL,
  };
  return mqtt_link_open(&o, deadline, err);
}

/* Connects with password (or the certificate), publishes, disconnects. */
static int publish_all(const struct provd_device_credentials *cred,
                       const struct provd_device_hub_opts *hub,
                       const char *password, const char *const *messages,
                       size_t n_messages, double interval_s, size_t *sent,
                       struct provd_err *err)
{
  double timeout = hub && hub->timeout_s > 0 ? hub->timeout_s
                                             : DEFAULT_TIMEOUT_S;
  struct mqtt_link *l = connect_hub(cred, hub, password,
                                    mqtt_link_now() + timeout, err);
  if (!l)
    return -1;
  char topic[600];
  snprintf(topic, sizeof(topic), "devices/%s/messages/events/",
           cred->device_id);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n_messages; i++) {
    if (i > 0 && interval_s > 0)
      mqtt_link_pause(l, interval_s);
    rc = mqtt_link_publish(l, topic, messages[i], strlen(messages[i]),
                           mqtt_link_now() + timeout, err);
    if (rc == 0 && sent)
      (*sent)++;
  }
  mqtt_link_close(l);
  return rc;
}

int provd_device_send(const struct provd_device_credentials *cred,
                      const struct provd_device_hub_opts *hub,
                      const char *const *messages, size_t n_messages,
                      double interval_s, size_t *sent, struct provd_err *err)
{
  perr_clear(err);
  if (sent)
    *sent = 0;
  if (check_send_input(cred, messages, n_messages, interval_s, err) != 0)
    return -1;
  if (!cred->symmetric_key[0] && !cred->cert_file[0]) {
    perr_set(err, "UNSUPPORTED", "device %s has no key or certificate the "
             "hub can check (a TPM device: provd_device_send_file)",
             cred->device_id);
    return -1;
  }
  char *token = NULL;
  if (cred->symmetric_key[0] && !(token = hub_token(cred, err)))
    return -1;
  int rc = publish_all(cred, hub, token, messages, n_messages, interval_s,
                       sent, err);
  secret_free(token);
  return rc;
}

int provd_device_send_file(const char *credentials_path,
                           const char *tpm_tcti,
                           const struct provd_device_hub_opts *hub,
                           const char *const *messages, size_t n_messages,
                           double interval_s, size_t *sent,
                           struct provd_err *err)
{
  struct provd_device_credentials c;
  if (sent)
    *sent = 0;
  if (provd_device_credentials_load(credentials_path, &c, err) != 0)
    return -1;
  int rc;
  if (c.symmetric_key[0] || c.cert_file[0]) {
    rc = provd_device_send(&c, hub, messages, n_messages, interval_s, sent,
                           err);
  } else if ((rc = check_send_input(&c, messages, n_messages, interval_s,
                                     err)) == 0) {
    char *token = tpm_hub_token(credentials_path, &c, tpm_tcti,
                                (int64_t)time(NULL) + TOKEN_LIFETIME_S, err);
    rc = token ? publish_all(&c, hub, token, messages, n_messages,
                             interval_s, sent, err)
               : -1;
    secret_free(token);
  }
  OPENSSL_cleanse(&c, sizeof(c));
  return rc;
}
