/* The credentials file (provd/device.h): JSON, written to PATH.tmp with
 * mode 0600 and renamed over PATH, so a crash leaves the old file or the
 * new one and never a readable key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "device_internal.h"
#include "provd_device_tpm.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/secret.h"

#define MAX_FILE_BYTES (64u * 1024u)

/* The assigned answer's registrationState.tpm.authenticationKey (the hub
 * identity key wrapped for this TPM), imported once more: the object the
 * TPM made is what the file keeps. */
static int import_hub_key(const char *tcti, const char *state_json,
                          struct tpm_device_key_object *out,
                          struct provd_err *err)
{
  json_t *state = state_json ? json_loads(state_json, 0, NULL) : NULL;
  const char *blob = json_string_value(json_object_get(
      json_object_get(state, "tpm"), "authenticationKey"));
  struct device_tpm *t = NULL;
  int rc = -1;
  if (!blob)
    perr_set(err, "BAD_INPUT", "the assigned answer holds no "
             "registrationState.tpm.authenticationKey for the hub");
  else if (device_tpm_open(tcti, &t, err) == 0)
    rc = device_tpm_import_object(t, blob, out, err);
  device_tpm_close(t);
  json_decref(state);
  return rc;
}

/* "tpm": {"tcti", "keyPrivate", "keyPublic"} (base64 TPM2B_*). */
static json_t *tpm_json(const char *tcti, const char *state_json,
                        struct provd_err *err)
{
  struct tpm_device_key_object *key = calloc(1, sizeof(*key));
  json_t *doc = NULL;
  if (!key)
    perr_set(err, "NO_MEMORY", "out of memory");
  else if (import_hub_key(tcti, state_json, key, err) == 0) {
    char *priv = b64_encode(key->priv, key->priv_len);
    char *pub = b64_encode(key->pub, key->pub_len);
    doc = priv && pub ? json_pack("{s:s,s:s,s:s}", "tcti", tcti,
                                  "keyPrivate", priv, "keyPublic", pub)
                      : NULL;
    if (!doc)
      perr_set(err, "NO_MEMORY", "out of memory");
    free(priv);
    free(pub);
  }
  free(key);
  return doc;
}

static json_t *credentials_json(const struct provd_device_opts *o,
                                const struct provd_device_result *r,
                                struct provd_err *err)
{
  char key[128] = "";
  if ((o->symmetric_key || o->group_key) &&
      device_key_b64(o, key, sizeof(key), err) != 0)
    return NULL;
  json_t *tpm = o->tpm_tcti
                    ? tpm_json(o->tpm_tcti, r->registration_state_json, err)
                    : NULL;
  if (o->tpm_tcti && !tpm)
    return NULL;
  json_t *doc = json_pack(
      "{s:i,s:s,s:s,s:s,s:s,s:s?,s:s?,s:s?,s:o?}", "version", 1, "idScope",
      o->id_scope, "registrationId", r->registration_id, "assignedHub",
      r->assigned_hub, "deviceId", r->device_id, "symmetricKey",
      key[0] ? key : NULL, "certFile", o->cert_file, "keyFile", o->key_file,
      "tpm", tpm);
  OPENSSL_cleanse(key, sizeof(key));
  if (!doc)
    perr_set(err, "NO_MEMORY", "out of memory");
  return doc;
}

static int write_private(const char *path, const char *text,
                         struct provd_err *err)
{
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
    perr_set(err, "BAD_INPUT", "credentials path too long");
    return -1;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  size_t len = strlen(text);
  int ok = fd >= 0 && fchmod(fd, 0600) == 0 &&
           write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0)
    ok = 0;
  if (ok && rename(tmp, path) == 0)
    return 0;
  perr_set(err, "IO", "cannot write %s: %s", path, strerror(errno));
  unlink(tmp);
  return -1;
}

int provd_device_credentials_save(const char *path,
                                  const struct provd_device_opts *opts,
                                  const struct provd_device_result *result,
                                  struct provd_err *err)
{
  perr_clear(err);
  if (!path || !opts || !result || !result->assigned_hub[0] ||
      !result->device_id[0]) {
    perr_set(err, "BAD_INPUT", "only an assigned registration is kept");
    return -1;
  }
  json_t *doc = credentials_json(opts, result, err);
  if (!doc)
    return -1;
  char *text = json_dumps(doc, JSON_INDENT(2));
  json_decref(doc);
  if (!text) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return -1;
  }
  int rc = write_private(path, text, err);
  secret_free(text);
  return rc;
}

static int copy_field(const json_t *doc, const char *key, char *out,
                      size_t cap, int required)
{
  const char *v = json_string_value(json_object_get(doc, key));
  if (!v)
    return required ? -1 : 0;
  if (strlen(v) >= cap)
    return -1;
  snprintf(out, cap, "%s", v);
  return 0;
}

/* The file's JSON, refused when others may read it; caller decrefs.
 * Clears err and the caller's out (out_size bytes) first. */
static json_t *read_private_json(const char *path, void *out,
                                 size_t out_size, struct provd_err *err)
{
  perr_clear(err);
  memset(out, 0, out_size);
  struct stat st;
  if (stat(path, &st) != 0) {
    perr_set(err, errno == ENOENT ? "NOT_FOUND" : "IO", "%s: %s", path,
             strerror(errno));
    return NULL;
  }
  if ((st.st_mode & 077) != 0) {
    perr_set(err, "BAD_CREDENTIALS", "%s is readable by others (mode %03o); "
             "it holds the device key, chmod 600 it", path,
             (unsigned)(st.st_mode & 0777));
    return NULL;
  }
  json_error_t jerr;
  json_t *doc = st.st_size <= (off_t)MAX_FILE_BYTES
                    ? json_load_file(path, 0, &jerr)
                    : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    perr_set(err, "BAD_CREDENTIALS", "%s is not a provd-device credentials "
             "file", path);
    return NULL;
  }
  return doc;
}

int provd_device_credentials_load(const char *path,
                                  struct provd_device_credentials *out,
                                  struct provd_err *err)
{
  json_t *doc = read_private_json(path, out, sizeof(*out), err);
  if (!doc)
    return -1;
  int bad = copy_field(doc, "idScope", out->id_scope,
                       sizeof(out->id_scope), 1) ||
            copy_field(doc, "registrationId", out->registration_id,
                       sizeof(out->registration_id), 1) ||
            copy_field(doc, "assignedHub", out->assigned_hub,
                       sizeof(out->assigned_hub), 1) ||
            copy_field(doc, "deviceId", out->device_id,
                       sizeof(out->device_id), 1) ||
            copy_field(doc, "symmetricKey", out->symmetric_key,
                       sizeof(out->symmetric_key), 0) ||
            copy_field(doc, "certFile", out->cert_file,
                       sizeof(out->cert_file), 0) ||
            copy_field(doc, "keyFile", out->key_file, sizeof(out->key_file),
                       0);
  json_decref(doc);
  if (bad) {
    OPENSSL_cleanse(out, sizeof(*out));
    perr_set(err, "BAD_CREDENTIALS", "%s is not a provd-device credentials "
             "file", path);
    return -1;
  }
  return 0;
}

static int decode_into(const char *b64, uint8_t *out, size_t cap,
                       size_t *len)
{
  return b64 && b64_decode(b64, out, cap, len) == 0 && *len > 0 ? 0 : -1;
}

int credentials_load_tpm(const char *path, struct credentials_tpm *out,
                         struct provd_err *err)
{
  json_t *doc = read_private_json(path, out, sizeof(*out), err);
  if (!doc)
    return -1;
  const json_t *tpm = json_object_get(doc, "tpm");
  int ok = json_is_object(tpm) &&
           copy_field(tpm, "tcti", out->tcti, sizeof(out->tcti), 1) == 0 &&
           decode_into(json_string_value(json_object_get(tpm, "keyPrivate")),
                       out->key.priv, sizeof(out->key.priv),
                       &out->key.priv_len) == 0 &&
           decode_into(json_string_value(json_object_get(tpm, "keyPublic")),
                       out->key.pub, sizeof(out->key.pub),
                       &out->key.pub_len) == 0;
  json_decref(doc);
  if (!ok) {
    perr_set(err, "BAD_CREDENTIALS", "%s holds no TPM hub key (not a TPM "
             "device, or kept by an older provd-device: register again "
             "with --force)", path);
    return -1;
  }
  return 0;
}
