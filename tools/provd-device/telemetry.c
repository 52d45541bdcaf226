/* Telemetry to the assigned hub (provd/device.h) with libmosquitto, as an
 * IoT Hub device talks MQTT: see "Communicate with an IoT hub using the
 * MQTT protocol" in the public Azure IoT Hub docs. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <openssl/crypto.h>

#include "device_internal.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/sas.h"

#define DEFAULT_TIMEOUT_S 30
#define TOKEN_LIFETIME_S 3600
#define KEEPALIVE_S 60
#define LOOP_MS 100
#define MAX_MESSAGE (256u * 1024u) /* IoT Hub's device-to-cloud limit */
#define SYSTEM_CA_DIR "/etc/ssl/certs"

/* What the callbacks report to the loop. */
struct session {
  int connack;      /* -1 until CONNACK arrives */
  int acked_mid;    /* the last PUBACK's message id */
  int disconnected; /* the connection went away */
};

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
  (void)m;
  ((struct session *)ud)->connack = rc;
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
  (void)m;
  ((struct session *)ud)->acked_mid = mid;
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
  (void)m;
  (void)rc;
  ((struct session *)ud)->disconnected = 1;
}

static double mono_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void)
{
  mosquitto_lib_init();
}

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

static int set_identity(struct mosquitto *m,
                        const struct provd_device_credentials *c,
                        const struct provd_device_hub_opts *h,
                        struct provd_err *err)
{
  char username[700];
  snprintf(username, sizeof(username), "%s/%s/?api-version=%s",
           c->assigned_hub, c->device_id, PROVD_DEVICE_HUB_API_VERSION);
  char *token = NULL;
  if (c->symmetric_key[0] && !(token = hub_token(c, err)))
    return -1;
  int rc = mosquitto_username_pw_set(m, username, token);
  if (token) {
    OPENSSL_cleanse(token, strlen(token));
    free(token);
  }
  const char *ca = h && h->ca_file ? h->ca_file : NULL;
  if (rc == MOSQ_ERR_SUCCESS)
    rc = mosquitto_tls_set(m, ca, ca ? NULL : SYSTEM_CA_DIR,
                           c->cert_file[0] ? c->cert_file : NULL,
                           c->key_file[0] ? c->key_file : NULL, NULL);
  if (rc == MOSQ_ERR_SUCCESS)
    rc = mosquitto_tls_opts_set(m, 1, "tlsv1.2", NULL);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, "BAD_INPUT", "hub connection settings: %s",
             mosquitto_strerror(rc));
    return -1;
  }
  return 0;
}

/* Runs the network loop until *flag differs from `unset` or the
 * deadline passes; -1 with err set when the connection broke. */
static int loop_until(struct mosquitto *m, struct session *s,
                      const int *flag, int unset, double deadline,
                      const char *what, struct provd_err *err)
{
  while (*flag == unset) {
    if (mono_now() > deadline) {
      perr_set(err, "TIMEOUT", "no answer from the hub while %s", what);
      return -1;
    }
    int rc = mosquitto_loop(m, LOOP_MS, 1);
    if (rc == MOSQ_ERR_TLS) {
      perr_set(err, "TLS", "TLS with the hub failed while %s (is the hub "
               "CA right?)", what);
      return -1;
    }
    if (*flag != unset)
      break;
    if (rc != MOSQ_ERR_SUCCESS || s->disconnected) {
      perr_set(err, s->connack > 0 ? "NOT_AUTHORIZED" : "NETWORK",
               "the hub closed the connection while %s%s", what,
               s->connack > 0 ? "" : " (not authorized, or not reachable)");
      return -1;
    }
  }
  return 0;
}

static int connect_hub(struct mosquitto *m, struct session *s,
                       const struct provd_device_credentials *c,
                       const struct provd_device_hub_opts *h, double deadline,
                       struct provd_err *err)
{
  const char *host = h && h->host ? h->host : c->assigned_hub;
  int port = h && h->port ? h->port : PROVD_DEVICE_HUB_PORT;
  int rc = mosquitto_connect(m, host, port, KEEPALIVE_S);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, rc == MOSQ_ERR_TLS ? "TLS" : "NETWORK",
             "cannot connect to the hub %s:%d: %s", host, port,
             rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    return -1;
  }
  if (loop_until(m, s, &s->connack, -1, deadline, "connecting", err) != 0)
    return -1;
  if (s->connack != 0) {
    perr_set(err, "NOT_AUTHORIZED", "the hub refused device %s: %s",
             c->device_id, mosquitto_connack_string(s->connack));
    return -1;
  }
  return 0;
}

static int publish_one(struct mosquitto *m, struct session *s,
                       const char *topic, const char *message,
                       double timeout_s, struct provd_err *err)
{
  size_t len = strlen(message);
  if (len > MAX_MESSAGE) {
    perr_set(err, "BAD_INPUT", "a message is larger than %u bytes",
             MAX_MESSAGE);
    return -1;
  }
  int mid = 0;
  int rc = mosquitto_publish(m, &mid, topic, (int)len, message, 1, false);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, "NETWORK", "publish failed: %s", mosquitto_strerror(rc));
    return -1;
  }
  double deadline = mono_now() + timeout_s;
  while (s->acked_mid != mid)
    if (loop_until(m, s, &s->acked_mid, s->acked_mid, deadline,
                   "waiting for the hub's acknowledgement", err) != 0)
      return -1;
  return 0;
}

/* Keeps the connection serviced while waiting between messages. */
static void pause_for(struct mosquitto *m, double seconds)
{
  double until = mono_now() + seconds;
  while (mono_now() < until)
    mosquitto_loop(m, LOOP_MS, 1);
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
  if (!c->symmetric_key[0] && !c->cert_file[0]) {
    perr_set(err, "UNSUPPORTED", "device %s has no key or certificate the "
             "hub can check (TPM devices are not supported here)",
             c->device_id);
    return -1;
  }
  if (interval_s < 0 || interval_s > 3600) {
    perr_set(err, "BAD_INPUT", "interval must be 0..3600 seconds");
    return -1;
  }
  return 0;
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
  pthread_once(&lib_once, lib_init);
  double timeout = hub && hub->timeout_s > 0 ? hub->timeout_s
                                             : DEFAULT_TIMEOUT_S;
  struct session s = {.connack = -1, .acked_mid = -1};
  struct mosquitto *m = mosquitto_new(cred->device_id, true, &s);
  if (!m) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_connect_callback_set(m, on_connect);
  mosquitto_publish_callback_set(m, on_publish);
  mosquitto_disconnect_callback_set(m, on_disconnect);
  char topic[600];
  snprintf(topic, sizeof(topic), "devices/%s/messages/events/",
           cred->device_id);
  int rc = set_identity(m, cred, hub, err);
  if (rc == 0)
    rc = connect_hub(m, &s, cred, hub, mono_now() + timeout, err);
  for (size_t i = 0; rc == 0 && i < n_messages; i++) {
    if (i > 0 && interval_s > 0)
      pause_for(m, interval_s);
    rc = publish_one(m, &s, topic, messages[i], timeout, err);
    if (rc == 0 && sent)
      (*sent)++;
  }
  if (s.connack == 0 && !s.disconnected) {
    mosquitto_disconnect(m);
    mosquitto_loop(m, LOOP_MS, 1);
  }
  mosquitto_destroy(m);
  return rc;
}
