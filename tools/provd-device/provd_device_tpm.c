#include "provd_device_tpm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpm_device.h"
#include "util/b64.h"
#include "util/sas.h"

#define BLOB_MAX 4096 /* decoded activation blob */
#define RESOURCE_MAX 1024

struct device_tpm {
  struct tpm_device *dev;
  uint8_t ek[TPM_DEVICE_PUBLIC_MAX];
  size_t ek_len;
  char *ek_b64, *srk_b64; /* owned */
};

int device_tpm_open(const char *tcti, struct device_tpm **out,
                    struct provd_err *err)
{
  struct device_tpm *t = calloc(1, sizeof(*t));
  uint8_t srk[TPM_DEVICE_PUBLIC_MAX];
  size_t srk_len = 0;
  if (!t) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  if (tpm_device_open(tcti, &t->dev, err) != 0 ||
      tpm_device_keys(t->dev, t->ek, &t->ek_len, srk, &srk_len, err) != 0) {
    device_tpm_close(t);
    return -1;
  }
  t->ek_b64 = b64_encode(t->ek, t->ek_len);
  t->srk_b64 = b64_encode(srk, srk_len);
  if (!t->ek_b64 || !t->srk_b64) {
    device_tpm_close(t);
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  *out = t;
  return 0;
}

void device_tpm_close(struct device_tpm *t)
{
  if (!t)
    return;
  tpm_device_close(t->dev);
  free(t->ek_b64);
  free(t->srk_b64);
  free(t);
}

const char *device_tpm_endorsement_key(const struct device_tpm *t)
{
  return t->ek_b64;
}

const char *device_tpm_storage_root_key(const struct device_tpm *t)
{
  return t->srk_b64;
}

void device_tpm_registration_id(const struct device_tpm *t,
                                char out[IDS_TPM_REGID_LEN + 1])
{
  ids_tpm_registration_id(t->ek, t->ek_len, out);
}

/* The decoded activation blob; caller frees. */
static uint8_t *decode_blob(const char *blob_b64, size_t *len,
                            struct provd_err *err)
{
  uint8_t *blob = malloc(BLOB_MAX);
  if (!blob) {
    perr_set(err, "NO_MEMORY", "out of memory");
  } else if (!blob_b64 || b64_decode(blob_b64, blob, BLOB_MAX, len) < 0) {
    perr_set(err, "BAD_RESPONSE", "authenticationKey is not base64 (or "
             "longer than %d bytes)", BLOB_MAX);
    free(blob);
    blob = NULL;
  }
  return blob;
}

int device_tpm_activate(struct device_tpm *t, const char *blob_b64,
                        struct provd_err *err)
{
  size_t len = 0;
  uint8_t *blob = decode_blob(blob_b64, &len, err);
  int rc = blob ? tpm_device_import(t->dev, blob, len, err) : -1;
  free(blob);
  return rc;
}

int device_tpm_import_object(struct device_tpm *t, const char *blob_b64,
                             struct tpm_device_key_object *out,
                             struct provd_err *err)
{
  size_t len = 0;
  uint8_t *blob = decode_blob(blob_b64, &len, err);
  int rc = blob ? tpm_device_import_object(t->dev, blob, len, out, err) : -1;
  free(blob);
  return rc;
}

/* sas_build_signed's signer: the TPM, with the persistent identity key or
 * a kept key object. */
struct tpm_signer {
  struct device_tpm *t;
  const struct tpm_device_key_object *key; /* NULL: persistent handle */
  struct provd_err *err;
  int failed;
};

static int sign_in_tpm(void *ud, const uint8_t *msg, size_t len,
                       uint8_t mac[32])
{
  struct tpm_signer *s = ud;
  int rc = s->key ? tpm_device_hmac_object(s->t->dev, s->key, msg, len, mac,
                                           s->err)
                  : tpm_device_hmac(s->t->dev, msg, len, mac, s->err);
  s->failed = rc != 0;
  return rc;
}

static char *signed_token(struct tpm_signer *s, const char *resource,
                          int64_t expiry, const char *skn)
{
  char *token = sas_build_signed(resource, expiry, skn, sign_in_tpm, s);
  if (!token && !s->failed)
    perr_set(s->err, "BAD_INPUT", "cannot build a SAS token for %.200s",
             resource);
  return token;
}

char *device_tpm_token(struct device_tpm *t, const char *id_scope,
                       const char *registration_id, int64_t expiry,
                       struct provd_err *err)
{
  char resource[RESOURCE_MAX];
  int n = snprintf(resource, sizeof(resource), "%s/registrations/%s",
                   id_scope, registration_id);
  if (n < 0 || (size_t)n >= sizeof(resource)) {
    perr_set(err, "BAD_INPUT", "scope and registration id are too long");
    return NULL;
  }
  struct tpm_signer s = {.t = t, .err = err};
  return signed_token(&s, resource, expiry, "registration");
}

char *device_tpm_hub_token(struct device_tpm *t,
                           const struct tpm_device_key_object *key,
                           const char *hub, const char *device_id,
                           int64_t expiry, struct provd_err *err)
{
  char resource[RESOURCE_MAX];
  int n = snprintf(resource, sizeof(resource), "%s/devices/%s", hub,
                   device_id);
  if (n < 0 || (size_t)n >= sizeof(resource)) {
    perr_set(err, "BAD_INPUT", "hub and device id are too long");
    return NULL;
  }
  struct tpm_signer s = {.t = t, .key = key, .err = err};
  return signed_token(&s, resource, expiry, NULL);
}
