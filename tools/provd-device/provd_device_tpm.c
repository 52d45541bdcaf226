#include "provd_device_tpm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpm_device.h"
#include "util/b64.h"
#include "util/url.h"

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

int device_tpm_activate(struct device_tpm *t, const char *blob_b64,
                        struct provd_err *err)
{
  uint8_t *blob = malloc(BLOB_MAX);
  size_t len = 0;
  int rc = -1;
  if (!blob)
    perr_set(err, "NO_MEMORY", "out of memory");
  else if (!blob_b64 || b64_decode(blob_b64, blob, BLOB_MAX, &len) < 0)
    perr_set(err, "BAD_RESPONSE", "authenticationKey is not base64 (or "
             "longer than %d bytes)", BLOB_MAX);
  else
    rc = tpm_device_import(t->dev, blob, len, err);
  free(blob);
  return rc;
}

char *device_tpm_token(struct device_tpm *t, const char *id_scope,
                       const char *registration_id, int64_t expiry,
                       struct provd_err *err)
{
  char resource[RESOURCE_MAX], sr[3 * RESOURCE_MAX], msg[3 * RESOURCE_MAX + 32];
  char sig_enc[128];
  uint8_t mac[TPM_DEVICE_HMAC_LEN];
  int n = snprintf(resource, sizeof(resource), "%s/registrations/%s",
                   id_scope, registration_id);
  if (n < 0 || (size_t)n >= sizeof(resource) ||
      url_encode(resource, sr, sizeof(sr)) < 0) {
    perr_set(err, "BAD_INPUT", "scope and registration id are too long");
    return NULL;
  }
  n = snprintf(msg, sizeof(msg), "%s\n%lld", sr, (long long)expiry);
  if (tpm_device_hmac(t->dev, (const uint8_t *)msg, (size_t)n, mac, err) != 0)
    return NULL;
  char *sig = b64_encode(mac, sizeof(mac));
  char *token = NULL;
  if (sig && url_encode(sig, sig_enc, sizeof(sig_enc)) == 0 &&
      asprintf(&token,
               "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=registration",
               sr, sig_enc, (long long)expiry) < 0)
    token = NULL;
  free(sig);
  if (!token)
    perr_set(err, "NO_MEMORY", "could not build the SAS token");
  return token;
}
