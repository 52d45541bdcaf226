/* Hub connectors following the journal (hub_sync.h). */
#include "notify/hub_sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/registration_secret.h"
#include "provd/hub.h"
#include "util/log.h"
#include "util/sas.h"

#define COMP "hub"
/* Registrations of one group reconciled per store read. */
#define GROUP_PAGE 500

struct hub_link {
  struct plugin_instance *inst; /* borrowed */
  const struct provd_hub_ops *ops;
  struct store *st;             /* borrowed */
  pthread_mutex_t mu;           /* the session is used by one lane at once */
  struct store_session *s;      /* lazy */
};

struct hub_link *hub_link_new(struct plugin_instance *inst, struct store *st)
{
  struct hub_link *l = calloc(1, sizeof(*l));
  if (!l)
    return NULL;
  l->inst = inst;
  l->ops = inst->desc->ops;
  l->st = st;
  pthread_mutex_init(&l->mu, NULL);
  return l;
}

void hub_link_free(struct hub_link *l)
{
  if (!l)
    return;
  store_session_close(l->s);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

int hub_sync_wants(const char *type)
{
  static const char *const types[] = {
      "device.assigned",    "device.reprovisioned", "registration.deleted",
      "enrollment.updated", "enrollment.deleted",   "group.updated",
      "group.deleted",      NULL};
  for (const char *const *t = types; *t; t++)
    if (strcmp(*t, type) == 0)
      return 1;
  return 0;
}

static const char *str_at(const json_t *obj, const char *key)
{
  return json_string_value(json_object_get(obj, key));
}

/* The enrollment (or group) the registration belongs to, when it exists
 * and is enabled; PROVD_NOT_FOUND when the device must not be on a hub. */
static int enabled_enrollment(struct hub_link *l, const struct store_rec *reg,
                              struct store_rec *out, struct provd_err *err)
{
  int is_group = reg->group_id && reg->group_id[0];
  int rc = store_get(l->s,
                     is_group ? PROVD_TABLE_ENROLLMENT_GROUPS
                              : PROVD_TABLE_ENROLLMENTS,
                     is_group ? reg->group_id : reg->id, out, err);
  if (rc != PROVD_OK)
    return rc;
  const char *status = str_at(out->body, "provisioningStatus");
  if (status && strcmp(status, "disabled") == 0) {
    store_rec_clear(out);
    return PROVD_NOT_FOUND;
  }
  return PROVD_OK;
}

/* The device's primary key as the hub checks it: the enrollment's own,
 * derived from the group key, or the one its attestation made (TPM: the
 * key imported into the device's TPM).  "" for mechanisms without one
 * (X.509). */
static void device_key(const struct store_rec *reg,
                       const struct store_rec *enr, char out[96])
{
  const json_t *att = json_object_get(enr->body, "attestation");
  const char *key = str_at(json_object_get(att, "symmetricKey"),
                           "primaryKey");
  out[0] = '\0';
  if (!key) {
    const char *made = registration_hub_key(reg->body);
    if (made && strlen(made) < 96)
      snprintf(out, 96, "%s", made);
    return;
  }
  if (reg->group_id && reg->group_id[0]) {
    if (sas_derive_device_key(key, reg->id, out, 96) != 0)
      out[0] = '\0';
  } else {
    snprintf(out, 96, "%s", key);
  }
}

static int call_ensure(struct hub_link *l, struct provd_call *call,
                       const struct store_rec *reg,
                       const struct store_rec *enr, struct provd_err *err)
{
  char key[96];
  device_key(reg, enr, key);
  const char *device_id = str_at(reg->body, "deviceId");
  /* X.509 devices: the certificate they registered with (DPS
   * registrationState.x509.certificateInfo). */
  const char *thumbprint = str_at(
      json_object_get(json_object_get(reg->body, "x509"), "certificateInfo"),
      "sha256Thumbprint");
  struct provd_device dev = {
      .struct_size = sizeof(dev),
      .hub_name = l->inst->id,
      .hub_hostname = str_at(reg->body, "assignedHub"),
      .device_id = device_id ? device_id : reg->id,
      .registration_id = reg->id,
      .symmetric_key = key[0] ? key : NULL,
      .x509_thumbprint = thumbprint,
  };
  int rc = l->ops->ensure_device(l->inst->state, call, &dev, err);
  OPENSSL_cleanse(key, sizeof(key));
  if (rc == PROVD_OK)
    log_info(COMP, "hub %s: device %s may connect regid=%s", l->inst->id,
             dev.device_id, reg->id);
  return rc;
}

static int call_remove(struct hub_link *l, struct provd_call *call,
                       const char *registration_id, const char *device_id,
                       struct provd_err *err)
{
  if (!PROVD_HAS(l->ops, struct provd_hub_ops, remove_device) ||
      !l->ops->remove_device)
    return PROVD_OK;
  struct provd_device dev = {
      .struct_size = sizeof(dev),
      .hub_name = l->inst->id,
      .device_id = device_id ? device_id : registration_id,
      .registration_id = registration_id,
  };
  int rc = l->ops->remove_device(l->inst->state, call, &dev, err);
  if (rc == PROVD_OK)
    log_info(COMP, "hub %s: device %s may not connect regid=%s", l->inst->id,
             dev.device_id, registration_id);
  return rc;
}

/* Makes the hub agree with the stored state of one registration. */
static int reconcile(struct hub_link *l, struct provd_call *call,
                     const char *registration_id, struct provd_err *err)
{
  struct store_rec reg = {0}, enr = {0};
  int rc = store_get(l->s, PROVD_TABLE_REGISTRATIONS, registration_id, &reg,
                     err);
  if (rc == PROVD_NOT_FOUND)
    return call_remove(l, call, registration_id, NULL, err);
  if (rc != PROVD_OK)
    return PROVD_E_UNAVAILABLE;
  const char *status = str_at(reg.body, "status");
  int here = reg.hub && strcmp(reg.hub, l->inst->id) == 0 && status &&
             strcmp(status, "assigned") == 0;
  rc = here ? enabled_enrollment(l, &reg, &enr, err) : PROVD_NOT_FOUND;
  if (rc == PROVD_OK)
    rc = call_ensure(l, call, &reg, &enr, err);
  else if (rc == PROVD_NOT_FOUND)
    rc = call_remove(l, call, reg.id, str_at(reg.body, "deviceId"), err);
  else
    rc = PROVD_E_UNAVAILABLE;
  store_rec_clear(&reg);
  store_rec_clear(&enr);
  return rc;
}

static int reconcile_group(struct hub_link *l, struct provd_call *call,
                           const char *group_id, struct provd_err *err)
{
  char after[256] = "";
  for (;;) {
    struct provd_query q = {.struct_size = sizeof(q), .group_id = group_id,
                            .limit = GROUP_PAGE,
                            .after_id = after[0] ? after : NULL};
    struct store_rec *regs = NULL;
    size_t n = 0;
    if (store_list(l->s, PROVD_TABLE_REGISTRATIONS, &q, &regs, &n, err) !=
        PROVD_OK)
      return PROVD_E_UNAVAILABLE;
    int rc = PROVD_OK;
    for (size_t i = 0; i < n && rc == PROVD_OK; i++)
      rc = reconcile(l, call, regs[i].id, err);
    if (n)
      snprintf(after, sizeof(after), "%s", regs[n - 1].id);
    store_recs_free(regs, n);
    if (rc != PROVD_OK || n < GROUP_PAGE)
      return rc;
  }
}

static int deliver(void *state, struct provd_call *call,
                   const struct provd_event *ev, struct provd_err *err)
{
  struct hub_link *l = state;
  if (!ev->registration_id)
    return PROVD_OK;
  pthread_mutex_lock(&l->mu);
  int rc = PROVD_E_UNAVAILABLE;
  if (!l->s)
    l->s = store_session_open(l->st, err);
  if (l->s)
    rc = strncmp(ev->type, "group.", 6) == 0
             ? reconcile_group(l, call, ev->registration_id, err)
             : reconcile(l, call, ev->registration_id, err);
  pthread_mutex_unlock(&l->mu);
  return rc;
}

const struct provd_notifier_ops *hub_sync_ops(void)
{
  static const struct provd_notifier_ops ops = {
      .struct_size = sizeof(ops), .deliver = deliver};
  return &ops;
}
