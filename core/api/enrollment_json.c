/* Validation and normalisation of service-API enrollment documents. */
#include "api/enrollment_json.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/rand.h>

#include "provd/plugin.h"
#include "api/x509_json.h"
#include "util/b64.h"
#include "util/ids.h"

#define KEY_MIN_BYTES 16
#define KEY_MAX_BYTES 64
#define KEY_MAX_CHARS 128      /* base64 text of more than 64 bytes */
#define GENERATED_KEY_BYTES 64 /* what DPS generates */
#define TEXT_FIELD_MAX 1024    /* host names, URLs, api versions */

static const char *const READ_ONLY_FIELDS[] = {
    "etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc",
    "registrationState", NULL};

const char *enrollment_id_field(enum enrollment_kind kind)
{
  return kind == ENROLLMENT_GROUP ? "enrollmentGroupId" : "registrationId";
}

int enrollment_id_valid(const char *id)
{
  /* The device API applies the same rule to registration ids: an
   * enrollment must never be stored under an id no device can use. */
  return ids_registration_id_valid(id);
}

static int invalid(struct provd_err *err, const char *fmt, const char *a)
{
  perr_set(err, "INVALID_ENROLLMENT", fmt, a);
  return PROVD_E_INVAL;
}

/* An optional field is absent when missing or JSON null; nulls are
 * removed so that stored documents never carry them. */
static json_t *optional_field(json_t *doc, const char *name)
{
  json_t *v = json_object_get(doc, name);
  if (v && json_is_null(v)) {
    json_object_del(doc, name);
    return NULL;
  }
  return v;
}

/* Replaces a string field's value by its canonical spelling from `allowed`
 * (matched ignoring case).  Absent is fine. */
static int canonical_enum(json_t *doc, const char *name, const char *label,
                          const char *const *allowed, struct provd_err *err)
{
  json_t *v = optional_field(doc, name);
  if (!v)
    return PROVD_OK;
  if (!json_is_string(v))
    return invalid(err, "%s must be a string", label);
  for (size_t i = 0; allowed[i]; i++) {
    if (strcasecmp(json_string_value(v), allowed[i]) == 0) {
      json_object_set_new(doc, name, json_string(allowed[i]));
      return PROVD_OK;
    }
  }
  return invalid(err, "%s has an unsupported value", label);
}

static int bounded_string(json_t *v, const char *name, size_t max,
                          struct provd_err *err)
{
  if (!json_is_string(v))
    return invalid(err, "%s must be a string", name);
  size_t n = json_string_length(v);
  if (n == 0 || n > max)
    return invalid(err, "%s has a bad length", name);
  return PROVD_OK;
}

/* ---- the id field ---- */

static int check_id_field(enum enrollment_kind kind, json_t *doc,
                          const char *path_id, struct provd_err *err)
{
  const char *field = enrollment_id_field(kind);
  json_t *v = optional_field(doc, field);
  if (!v) {
    if (!path_id)
      return invalid(err, "%s is required", field);
    /* The id goes first, where every SDK puts it. */
    json_t *rest = json_copy(doc);
    json_object_clear(doc);
    json_object_set_new(doc, field, json_string(path_id));
    json_object_update(doc, rest);
    json_decref(rest);
    v = json_object_get(doc, field);
  }
  if (!json_is_string(v) || !enrollment_id_valid(json_string_value(v)))
    return invalid(err, "%s is not a valid id", field);
  if (path_id && strcasecmp(json_string_value(v), path_id) != 0)
    return invalid(err, "%s does not match the id in the path", field);
  return PROVD_OK;
}

/* ---- attestation ---- */

static int random_key(char **out)
{
  uint8_t raw[GENERATED_KEY_BYTES];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return PROVD_E_INTERNAL;
  *out = b64_encode(raw, sizeof(raw));
  OPENSSL_cleanse(raw, sizeof(raw));
  return *out ? PROVD_OK : PROVD_E_NOMEM;
}

static int key_ok(const char *b64)
{
  uint8_t raw[KEY_MAX_BYTES];
  size_t n = 0;
  if (strlen(b64) > KEY_MAX_CHARS)
    return 0;
  int ok = b64_decode(b64, raw, sizeof(raw), &n) == 0 &&
           n >= KEY_MIN_BYTES && n <= KEY_MAX_BYTES;
  OPENSSL_cleanse(raw, sizeof(raw));
  return ok;
}

/* A given key must be valid; a missing one is generated. */
static int ensure_key(json_t *sym, const char *name, struct provd_err *err)
{
  json_t *v = optional_field(sym, name);
  if (v) {
    if (!json_is_string(v) || !key_ok(json_string_value(v)))
      return invalid(err,
                     "attestation.symmetricKey.%s must be base64 of 16 to 64 "
                     "bytes", name);
    return PROVD_OK;
  }
  char *key = NULL;
  int rc = random_key(&key);
  if (rc != PROVD_OK) {
    perr_set(err, "INTERNAL", "cannot generate a key");
    return rc;
  }
  json_object_set_new(sym, name, json_string(key));
  OPENSSL_cleanse(key, strlen(key));
  free(key);
  return PROVD_OK;
}

static int check_symmetric_key(json_t *att, struct provd_err *err)
{
  json_t *sym = optional_field(att, "symmetricKey");
  if (!sym) {
    json_object_set_new(att, "symmetricKey", json_object());
    sym = json_object_get(att, "symmetricKey");
  }
  if (!json_is_object(sym))
    return invalid(err, "%s must be an object", "attestation.symmetricKey");
  int rc = ensure_key(sym, "primaryKey", err);
  if (rc == PROVD_OK)
    rc = ensure_key(sym, "secondaryKey", err);
  return rc;
}

/* attestation.tpm: the EK as DPS shows it (base64 of the TPM2B_PUBLIC the
 * device sends, or another public-key form the tpm plugin reads); the
 * optional SRK likewise.  Nothing here is secret. */
#define TPM_KEY_MAX_BYTES 1024 /* as the error messages say */
static int tpm_key_ok(const json_t *v)
{
  uint8_t raw[TPM_KEY_MAX_BYTES];
  size_t n = 0;
  const char *b64 = json_string_value(v);
  return b64 && strlen(b64) <= 4 * ((TPM_KEY_MAX_BYTES + 2) / 3) &&
         b64_decode(b64, raw, sizeof(raw), &n) == 0 && n > 0;
}

static int check_tpm(json_t *att, struct provd_err *err)
{
  json_t *tpm = optional_field(att, "tpm");
  if (!json_is_object(tpm))
    return invalid(err, "%s must be an object", "attestation.tpm");
  if (!tpm_key_ok(json_object_get(tpm, "endorsementKey")))
    return invalid(err, "%s must be base64 of at most 1024 bytes",
                   "attestation.tpm.endorsementKey");
  json_t *srk = optional_field(tpm, "storageRootKey");
  if (srk && !tpm_key_ok(srk))
    return invalid(err, "%s must be base64 of at most 1024 bytes",
                   "attestation.tpm.storageRootKey");
  return PROVD_OK;
}

static const char *const ATTESTATION_TYPES[] = {"symmetricKey", "x509",
                                                "tpm", "none", NULL};

static int check_attestation(enum enrollment_kind kind, json_t *doc,
                             const char **type_out, struct provd_err *err)
{
  json_t *att = optional_field(doc, "attestation");
  if (!att)
    return invalid(err, "%s is required", "attestation");
  if (!json_is_object(att))
    return invalid(err, "%s must be an object", "attestation");
  json_t *type = json_object_get(att, "type");
  if (!json_is_string(type))
    return invalid(err, "%s must be a string", "attestation.type");
  int rc = canonical_enum(att, "type", "attestation.type",
                          ATTESTATION_TYPES, err);
  if (rc != PROVD_OK)
    return rc;
  const char *canon = json_string_value(json_object_get(att, "type"));
  if (strcmp(canon, "symmetricKey") == 0) {
    rc = check_symmetric_key(att, err);
    canon = "symmetricKey";
  } else if (strcmp(canon, "x509") == 0) {
    rc = x509_attestation_normalize(kind, att, err);
    canon = "x509";
  } else if (strcmp(canon, "tpm") == 0) {
    if (kind == ENROLLMENT_GROUP)
      return invalid(err, "enrollment groups cannot use %s attestation (DPS "
                          "has TPM individual enrollments only)", "tpm");
    rc = check_tpm(att, err);
    canon = "tpm";
  } else {
    return invalid(err, "attestation type %s is not supported yet", canon);
  }
  if (rc == PROVD_OK && type_out)
    *type_out = canon;
  return rc;
}

/* ---- other fields ---- */

static const char *const PROVISIONING_STATUSES[] = {"enabled", "disabled",
                                                    NULL};
static const char *const ALLOCATION_POLICIES[] = {"hashed", "static",
                                                  "geoLatency", "custom",
                                                  NULL};

int enrollment_policy_is_dps(const char *policy)
{
  for (size_t i = 0; policy && ALLOCATION_POLICIES[i]; i++)
    if (strcmp(policy, ALLOCATION_POLICIES[i]) == 0)
      return 1;
  return 0;
}

/* A third-party allocation plugin's policy name: letters, digits, - _ . */
static int policy_name_valid(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
      return 0;
  return 1;
}

/* The DPS names, canonical case; another valid name is kept as given (a
 * third-party plugin's; the service API checks one implements it). */
static int check_allocation_policy(json_t *doc, struct provd_err *err)
{
  json_t *v = optional_field(doc, "allocationPolicy");
  if (!v)
    return PROVD_OK;
  if (!json_is_string(v))
    return invalid(err, "%s must be a string", "allocationPolicy");
  if (canonical_enum(doc, "allocationPolicy", "allocationPolicy",
                     ALLOCATION_POLICIES, err) == PROVD_OK)
    return PROVD_OK;
  if (!policy_name_valid(json_string_value(v)))
    return invalid(err, "%s has an unsupported value", "allocationPolicy");
  return PROVD_OK;
}

/* DPS: static needs exactly one hub; custom needs its webhook. */
static int check_policy_needs(json_t *doc, struct provd_err *err)
{
  const char *policy =
      json_string_value(json_object_get(doc, "allocationPolicy"));
  if (policy && strcmp(policy, "static") == 0) {
    json_t *hubs = json_object_get(doc, "iotHubs");
    size_t n = json_array_size(hubs);
    if (n > 1 || (n == 0 && !json_object_get(doc, "iotHubHostName")))
      return invalid(err, "%s", "allocationPolicy static needs exactly one "
                     "hub in iotHubs (or iotHubHostName)");
  }
  if (policy && strcmp(policy, "custom") == 0 &&
      !json_object_get(doc, "customAllocationDefinition"))
    return invalid(err, "%s", "allocationPolicy custom needs "
                   "customAllocationDefinition");
  return PROVD_OK;
}

static int check_iot_hubs(json_t *doc, struct provd_err *err)
{
  json_t *hubs = optional_field(doc, "iotHubs");
  if (!hubs)
    return PROVD_OK;
  if (!json_is_array(hubs) || json_array_size(hubs) > ENROLLMENT_HUBS_MAX)
    return invalid(err, "%s must be an array of at most 50 host names",
                   "iotHubs");
  size_t i;
  json_t *h;
  json_array_foreach(hubs, i, h) {
    if (bounded_string(h, "iotHubs[]", TEXT_FIELD_MAX, err) != PROVD_OK)
      return PROVD_E_INVAL;
  }
  return PROVD_OK;
}

static int check_object(json_t *doc, const char *name,
                        struct provd_err *err)
{
  json_t *v = optional_field(doc, name);
  if (v && !json_is_object(v))
    return invalid(err, "%s must be an object", name);
  return PROVD_OK;
}

/* Fills a boolean member of obj with its default when absent. */
static int default_bool(json_t *obj, const char *owner, const char *name,
                        int dflt, struct provd_err *err)
{
  json_t *v = optional_field(obj, name);
  if (!v) {
    json_object_set_new(obj, name, json_boolean(dflt));
    return PROVD_OK;
  }
  if (!json_is_boolean(v)) {
    perr_set(err, "INVALID_ENROLLMENT", "%s.%s must be a boolean", owner,
             name);
    return PROVD_E_INVAL;
  }
  return PROVD_OK;
}

/* An object field that gets default members: created when absent. */
static json_t *object_with_defaults(json_t *doc, const char *name,
                                    struct provd_err *err)
{
  json_t *v = optional_field(doc, name);
  if (!v) {
    json_object_set_new(doc, name, json_object());
    return json_object_get(doc, name);
  }
  if (!json_is_object(v)) {
    invalid(err, "%s must be an object", name);
    return NULL;
  }
  return v;
}

static int check_reprovision_policy(json_t *doc, struct provd_err *err)
{
  const char *name = "reprovisionPolicy";
  json_t *p = object_with_defaults(doc, name, err);
  if (!p)
    return PROVD_E_INVAL;
  int rc = default_bool(p, name, "updateHubAssignment", 1, err);
  if (rc == PROVD_OK)
    rc = default_bool(p, name, "migrateDeviceData", 1, err);
  return rc;
}

static int check_capabilities(json_t *doc, struct provd_err *err)
{
  json_t *c = object_with_defaults(doc, "capabilities", err);
  if (!c)
    return PROVD_E_INVAL;
  return default_bool(c, "capabilities", "iotEdge", 0, err);
}

static int check_custom_allocation(json_t *doc, struct provd_err *err)
{
  const char *name = "customAllocationDefinition";
  json_t *c = optional_field(doc, name);
  if (!c)
    return PROVD_OK;
  if (!json_is_object(c))
    return invalid(err, "%s must be an object", name);
  const json_t *url = json_object_get(c, "webhookUrl");
  if (bounded_string((json_t *)url, "customAllocationDefinition.webhookUrl",
                     TEXT_FIELD_MAX, err) != PROVD_OK)
    return PROVD_E_INVAL;
  if (strncasecmp(json_string_value(url), "https://", 8) != 0 &&
      strncasecmp(json_string_value(url), "http://", 7) != 0)
    return invalid(err, "%s", "customAllocationDefinition.webhookUrl must "
                   "be an https:// (or http:// to loopback) URL");
  return bounded_string(json_object_get(c, "apiVersion"),
                        "customAllocationDefinition.apiVersion", 64, err);
}

static int check_device_id(json_t *doc, struct provd_err *err)
{
  json_t *v = optional_field(doc, "deviceId");
  if (!v)
    return PROVD_OK;
  if (!json_is_string(v) || !enrollment_id_valid(json_string_value(v)))
    return invalid(err, "%s is not a valid id", "deviceId");
  return PROVD_OK;
}

/* Fields an enrollment group cannot have. */
static int reject_individual_fields(json_t *doc, struct provd_err *err)
{
  static const char *const fields[] = {"registrationId", "deviceId",
                                       "optionalDeviceInformation", NULL};
  for (size_t i = 0; fields[i]; i++) {
    if (optional_field(doc, fields[i]))
      return invalid(err, "%s is not valid in an enrollment group",
                     fields[i]);
  }
  return PROVD_OK;
}

static int check_kind_fields(enum enrollment_kind kind, json_t *doc,
                             struct provd_err *err)
{
  if (kind == ENROLLMENT_GROUP)
    return reject_individual_fields(doc, err);
  if (optional_field(doc, "enrollmentGroupId"))
    return invalid(err, "%s is not valid in an individual enrollment",
                   "enrollmentGroupId");
  int rc = check_device_id(doc, err);
  if (rc == PROVD_OK)
    rc = check_object(doc, "optionalDeviceInformation", err);
  return rc;
}

static int check_scalars(json_t *doc, struct provd_err *err)
{
  int rc = canonical_enum(doc, "provisioningStatus", "provisioningStatus",
                          PROVISIONING_STATUSES, err);
  if (rc != PROVD_OK)
    return rc;
  if (!json_object_get(doc, "provisioningStatus"))
    json_object_set_new(doc, "provisioningStatus", json_string("enabled"));
  rc = check_allocation_policy(doc, err);
  if (rc != PROVD_OK)
    return rc;
  json_t *host = optional_field(doc, "iotHubHostName");
  if (host && bounded_string(host, "iotHubHostName", TEXT_FIELD_MAX, err))
    return PROVD_E_INVAL;
  json_t *policy = optional_field(doc, "credentialPolicyName");
  if (policy && bounded_string(policy, "credentialPolicyName",
                               CREDENTIAL_POLICY_MAX, err))
    return PROVD_E_INVAL;
  return PROVD_OK;
}

int enrollment_normalize(enum enrollment_kind kind, json_t *doc,
                         const char *path_id, const char **attestation_type,
                         struct provd_err *err)
{
  if (!json_is_object(doc))
    return invalid(err, "the %s must be a JSON object",
                   kind == ENROLLMENT_GROUP ? "enrollment group"
                                            : "enrollment");
  for (size_t i = 0; READ_ONLY_FIELDS[i]; i++)
    json_object_del(doc, READ_ONLY_FIELDS[i]);
  int rc = check_kind_fields(kind, doc, err);
  if (rc == PROVD_OK)
    rc = check_id_field(kind, doc, path_id, err);
  if (rc == PROVD_OK)
    rc = check_attestation(kind, doc, attestation_type, err);
  if (rc == PROVD_OK)
    rc = check_scalars(doc, err);
  if (rc == PROVD_OK)
    rc = check_iot_hubs(doc, err);
  if (rc == PROVD_OK)
    rc = check_object(doc, "initialTwin", err);
  if (rc == PROVD_OK)
    rc = check_custom_allocation(doc, err);
  if (rc == PROVD_OK)
    rc = check_policy_needs(doc, err);
  if (rc == PROVD_OK)
    rc = check_reprovision_policy(doc, err);
  if (rc == PROVD_OK)
    rc = check_capabilities(doc, err);
  return rc;
}

void enrollment_strip_keys(json_t *doc)
{
  json_t *sym = json_object_get(json_object_get(doc, "attestation"),
                                "symmetricKey");
  json_object_del(sym, "primaryKey");
  json_object_del(sym, "secondaryKey");
}

int enrollment_stamp(json_t *doc, const char *created, const char *updated,
                     const char *etag)
{
  /* Delete first so the stamps always come last, as DPS prints them. */
  for (size_t i = 0; READ_ONLY_FIELDS[i]; i++) {
    if (strcmp(READ_ONLY_FIELDS[i], "registrationState") != 0)
      json_object_del(doc, READ_ONLY_FIELDS[i]);
  }
  if (json_object_set_new(doc, "createdDateTimeUtc", json_string(created)) ||
      json_object_set_new(doc, "lastUpdatedDateTimeUtc",
                          json_string(updated)) ||
      json_object_set_new(doc, "etag", json_string(etag)))
    return PROVD_E_NOMEM;
  return PROVD_OK;
}

int enrollment_etag_normalize(const char *in, char *out, size_t out_cap)
{
  if (!in || out_cap < 3)
    return -1;
  while (*in == ' ' || *in == '\t')
    in++;
  if (strncmp(in, "W/", 2) == 0)
    in += 2;
  size_t n = strlen(in);
  while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
    n--;
  if (n == 0 || n > ENROLLMENT_ETAG_MAX)
    return -1;
  if (n == 1 && in[0] == '*') {
    memcpy(out, "*", 2);
    return 0;
  }
  int quoted = n >= 2 && in[0] == '"' && in[n - 1] == '"';
  size_t need = quoted ? n + 1 : n + 3;
  if (need > out_cap)
    return -1;
  size_t o = 0;
  if (!quoted)
    out[o++] = '"';
  memcpy(out + o, in, n);
  o += n;
  if (!quoted)
    out[o++] = '"';
  out[o] = '\0';
  return 0;
}

/* ---- bulk ---- */

static const char *const BULK_MODES[] = {NULL, "create", "update",
                                         "updateIfMatchETag", "delete"};

const char *enrollment_bulk_mode_name(enum bulk_mode mode)
{
  if (mode < BULK_CREATE || mode > BULK_DELETE)
    return "unknown";
  return BULK_MODES[mode];
}

static int parse_mode(const json_t *body, enum bulk_mode *out,
                      struct provd_err *err)
{
  const char *mode = json_string_value(json_object_get(body, "mode"));
  for (int m = BULK_CREATE; mode && m <= BULK_DELETE; m++) {
    if (strcasecmp(mode, BULK_MODES[m]) == 0) {
      *out = (enum bulk_mode)m;
      return PROVD_OK;
    }
  }
  perr_set(err, "INVALID_BULK",
           "mode must be create, update, updateIfMatchETag or delete");
  return PROVD_E_INVAL;
}

static int item_error(struct provd_err *err, size_t i,
                      const struct provd_err *why)
{
  perr_set(err, "INVALID_BULK", "item %zu: %s", i, why->msg);
  return PROVD_E_INVAL;
}

static int parse_etag(const json_t *item, enum bulk_mode mode,
                      struct bulk_item *out, struct provd_err *why)
{
  json_t *etag = json_object_get(item, "etag");
  out->etag[0] = '\0';
  if (mode != BULK_UPDATE_IF_MATCH)
    return PROVD_OK;
  if (!json_is_string(etag) ||
      enrollment_etag_normalize(json_string_value(etag), out->etag,
                                sizeof(out->etag)) != 0) {
    perr_set(why, "INVALID_BULK", "etag is required for updateIfMatchETag");
    return PROVD_E_INVAL;
  }
  return PROVD_OK;
}

static int parse_delete_item(enum enrollment_kind kind, const json_t *item,
                             struct bulk_item *out, struct provd_err *why)
{
  const char *field = enrollment_id_field(kind);
  const char *id = json_string_value(json_object_get(item, field));
  if (!enrollment_id_valid(id)) {
    perr_set(why, "INVALID_BULK", "%s is not a valid id", field);
    return PROVD_E_INVAL;
  }
  memcpy(out->id, id, strlen(id) + 1);
  out->doc = json_deep_copy(item);
  return out->doc ? PROVD_OK : PROVD_E_NOMEM;
}

static int parse_item(enum enrollment_kind kind, enum bulk_mode mode,
                      const json_t *item, struct bulk_item *out,
                      struct provd_err *why)
{
  if (!json_is_object(item)) {
    perr_set(why, "INVALID_BULK", "not a JSON object");
    return PROVD_E_INVAL;
  }
  if (mode == BULK_DELETE)
    return parse_delete_item(kind, item, out, why);
  int rc = parse_etag(item, mode, out, why);
  if (rc != PROVD_OK)
    return rc;
  out->doc = json_deep_copy(item);
  if (!out->doc)
    return PROVD_E_NOMEM;
  rc = enrollment_normalize(kind, out->doc, NULL, &out->attestation_type,
                            why);
  if (rc != PROVD_OK)
    return rc;
  const char *id =
      json_string_value(json_object_get(out->doc, enrollment_id_field(kind)));
  memcpy(out->id, id, strlen(id) + 1);
  return PROVD_OK;
}

int enrollment_bulk_parse(enum enrollment_kind kind, const json_t *body,
                          struct bulk_request *out, struct provd_err *err)
{
  memset(out, 0, sizeof(*out));
  if (!json_is_object(body)) {
    perr_set(err, "INVALID_BULK", "the bulk operation must be an object");
    return PROVD_E_INVAL;
  }
  int rc = parse_mode(body, &out->mode, err);
  if (rc != PROVD_OK)
    return rc;
  const char *list = kind == ENROLLMENT_GROUP ? "enrollmentGroups"
                                              : "enrollments";
  const json_t *items = json_object_get(body, list);
  size_t n = json_array_size(items);
  if (!json_is_array(items) || n == 0 || n > ENROLLMENT_BULK_MAX) {
    perr_set(err, "INVALID_BULK", "%s must be an array of 1 to %d items",
             list, ENROLLMENT_BULK_MAX);
    return PROVD_E_INVAL;
  }
  for (size_t i = 0; i < n; i++) {
    struct provd_err why;
    perr_clear(&why);
    out->n = i + 1; /* so that clear() frees a half-built item too */
    rc = parse_item(kind, out->mode, json_array_get(items, i),
                    &out->items[i], &why);
    if (rc != PROVD_OK) {
      enrollment_bulk_clear(out);
      return rc == PROVD_E_INVAL ? item_error(err, i, &why) : rc;
    }
  }
  return PROVD_OK;
}

void enrollment_bulk_clear(struct bulk_request *b)
{
  for (size_t i = 0; i < b->n && i < ENROLLMENT_BULK_MAX; i++) {
    json_decref(b->items[i].doc);
    b->items[i].doc = NULL;
  }
  b->n = 0;
}

/* ---- paging ---- */

int page_size_parse(const char *text, size_t *out)
{
  if (!text) {
    *out = PAGE_SIZE_DEFAULT;
    return 0;
  }
  while (*text == ' ')
    text++;
  size_t v = 0;
  size_t digits = 0;
  for (; *text >= '0' && *text <= '9'; text++, digits++) {
    if (v <= PAGE_SIZE_MAX) /* stop growing: clamped below anyway */
      v = v * 10 + (size_t)(*text - '0');
  }
  while (*text == ' ')
    text++;
  if (digits == 0 || digits > 18 || *text || v == 0)
    return -1;
  *out = v > PAGE_SIZE_MAX ? PAGE_SIZE_MAX : v;
  return 0;
}

char *continuation_encode(const char *last_id)
{
  if (!enrollment_id_valid(last_id))
    return NULL;
  char *b = b64_encode((const uint8_t *)last_id, strlen(last_id));
  if (!b)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; b[i]; i++) {
    if (b[i] == '=')
      break;
    b[o++] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : b[i];
  }
  b[o] = '\0';
  return b;
}

int continuation_decode(const char *token, char *out, size_t out_cap)
{
  /* base64 of a 128-char id is 172 chars */
  char std[180];
  size_t n = token ? strlen(token) : 0;
  if (n == 0 || n > 172 || n % 4 == 1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char c = token[i];
    if (c == '+' || c == '/' || c == '=')
      return -1; /* only the url-safe, unpadded form is ours */
    std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (n % 4)
    std[n++] = '=';
  std[n] = '\0';
  uint8_t raw[ENROLLMENT_ID_MAX + 2];
  size_t len = 0;
  if (b64_decode(std, raw, sizeof(raw), &len) != 0 || len + 1 > out_cap)
    return -1;
  memcpy(out, raw, len);
  out[len] = '\0';
  return strlen(out) == len && enrollment_id_valid(out) ? 0 : -1;
}
