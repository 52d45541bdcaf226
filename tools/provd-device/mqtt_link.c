/* A blocking MQTT connection on libmosquitto (mqtt_link.h). */
#include "mqtt_link.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#define KEEPALIVE_S 60
#define LOOP_MS 100
#define SYSTEM_CA_DIR "/etc/ssl/certs"

struct mqtt_link {
  struct mosquitto *m;
  mqtt_link_message_fn on_message;
  void *ud;
  int connack;      /* -1 until CONNACK */
  int acked_mid;    /* last PUBACK / SUBACK message id */
  int disconnected;
};

double mqtt_link_now(void)
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

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
  (void)m;
  ((struct mqtt_link *)ud)->connack = rc;
}

static void on_ack(struct mosquitto *m, void *ud, int mid)
{
  (void)m;
  ((struct mqtt_link *)ud)->acked_mid = mid;
}

static void on_suback(struct mosquitto *m, void *ud, int mid, int n,
                      const int *granted)
{
  (void)n;
  (void)granted;
  on_ack(m, ud, mid);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
  (void)m;
  (void)rc;
  ((struct mqtt_link *)ud)->disconnected = 1;
}

static void on_message(struct mosquitto *m, void *ud,
                       const struct mosquitto_message *msg)
{
  (void)m;
  struct mqtt_link *l = ud;
  if (l->on_message)
    l->on_message(l->ud, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

/* One round of the network loop; -1 with err set when the connection
 * broke. */
static int serve(struct mqtt_link *l, const char *what, struct provd_err *err)
{
  int rc = mosquitto_loop(l->m, LOOP_MS, 1);
  if (rc == MOSQ_ERR_TLS) {
    perr_set(err, "TLS", "TLS failed while %s (is the CA right?)", what);
    return -1;
  }
  if (rc != MOSQ_ERR_SUCCESS || l->disconnected) {
    perr_set(err, l->connack == 0 ? "NETWORK" : "NOT_AUTHORIZED",
             "the server closed the connection while %s", what);
    return -1;
  }
  return 0;
}

int mqtt_link_wait(struct mqtt_link *l, const int *done, double deadline,
                   const char *what, struct provd_err *err)
{
  while (!*done) {
    if (mqtt_link_now() > deadline) {
      perr_set(err, "TIMEOUT", "no answer while %s", what);
      return -1;
    }
    if (serve(l, what, err) != 0 && !*done)
      return -1;
  }
  return 0;
}

/* Waits for the acknowledgement of message id mid. */
static int wait_ack(struct mqtt_link *l, int mid, double deadline,
                    const char *what, struct provd_err *err)
{
  while (l->acked_mid != mid) {
    if (mqtt_link_now() > deadline) {
      perr_set(err, "TIMEOUT", "no acknowledgement while %s", what);
      return -1;
    }
    if (serve(l, what, err) != 0 && l->acked_mid != mid)
      return -1;
  }
  return 0;
}

static int configure(struct mqtt_link *l, const struct mqtt_link_opts *o,
                     struct provd_err *err)
{
  mosquitto_int_option(l->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_connect_callback_set(l->m, on_connect);
  mosquitto_publish_callback_set(l->m, on_ack);
  mosquitto_subscribe_callback_set(l->m, on_suback);
  mosquitto_disconnect_callback_set(l->m, on_disconnect);
  mosquitto_message_callback_set(l->m, on_message);
  int rc = mosquitto_username_pw_set(l->m, o->username, o->password);
  if (rc == MOSQ_ERR_SUCCESS)
    rc = mosquitto_tls_set(l->m, o->ca_file, o->ca_file ? NULL : SYSTEM_CA_DIR,
                           o->cert_file, o->key_file, NULL);
  if (rc == MOSQ_ERR_SUCCESS)
    rc = mosquitto_tls_opts_set(l->m, 1, "tlsv1.2", NULL);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, "BAD_INPUT", "MQTT connection settings: %s",
             mosquitto_strerror(rc));
    return -1;
  }
  return 0;
}

struct mqtt_link *mqtt_link_open(const struct mqtt_link_opts *o,
                                 double deadline, struct provd_err *err)
{
  pthread_once(&lib_once, lib_init);
  struct mqtt_link *l = calloc(1, sizeof(*l));
  if (!l || !(l->m = mosquitto_new(o->client_id, true, l))) {
    free(l);
    perr_set(err, "NO_MEMORY", "out of memory");
    return NULL;
  }
  l->connack = -1;
  l->acked_mid = -1;
  l->on_message = o->on_message;
  l->ud = o->ud;
  if (configure(l, o, err) != 0) {
    mqtt_link_close(l);
    return NULL;
  }
  int rc = mosquitto_connect(l->m, o->host, o->port, KEEPALIVE_S);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, rc == MOSQ_ERR_TLS ? "TLS" : "NETWORK",
             "cannot connect to %s:%d: %s", o->host, o->port,
             rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    mqtt_link_close(l);
    return NULL;
  }
  while (l->connack == -1) {
    if (mqtt_link_now() > deadline) {
      perr_set(err, "TIMEOUT", "no CONNACK from %s:%d", o->host, o->port);
      break;
    }
    if (serve(l, "connecting", err) != 0 && l->connack == -1)
      break;
  }
  if (l->connack != 0) {
    if (l->connack > 0)
      perr_set(err, "NOT_AUTHORIZED", "%s:%d refused the connection: %s",
               o->host, o->port, mosquitto_connack_string(l->connack));
    mqtt_link_close(l);
    return NULL;
  }
  return l;
}

void mqtt_link_close(struct mqtt_link *l)
{
  if (!l)
    return;
  if (l->connack == 0 && !l->disconnected) {
    mosquitto_disconnect(l->m);
    mosquitto_loop(l->m, LOOP_MS, 1);
  }
  mosquitto_destroy(l->m);
  free(l);
}

int mqtt_link_subscribe(struct mqtt_link *l, const char *topic,
                        double deadline, struct provd_err *err)
{
  int mid = 0;
  int rc = mosquitto_subscribe(l->m, &mid, topic, 1);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, "NETWORK", "subscribe failed: %s", mosquitto_strerror(rc));
    return -1;
  }
  return wait_ack(l, mid, deadline, "subscribing", err);
}

int mqtt_link_publish(struct mqtt_link *l, const char *topic,
                      const void *payload, size_t len, double deadline,
                      struct provd_err *err)
{
  int mid = 0;
  int rc = mosquitto_publish(l->m, &mid, topic, (int)len, payload, 1, false);
  if (rc != MOSQ_ERR_SUCCESS) {
    perr_set(err, "NETWORK", "publish failed: %s", mosquitto_strerror(rc));
    return -1;
  }
  return wait_ack(l, mid, deadline, "waiting for the acknowledgement", err);
}

void mqtt_link_pause(struct mqtt_link *l, double seconds)
{
  double until = mqtt_link_now() + seconds;
  while (mqtt_link_now() < until)
    mosquitto_loop(l->m, LOOP_MS, 1);
}
