/* libFuzzer target over the JSON request bodies provd accepts:
 *  - device registration bodies, read by the one body reader both APIs
 *    use (core/api/json_body.c: an object, no repeated key);
 *  - service-API documents (core/api/enrollment_json.c), read the same
 *    way, then validated as an individual enrollment, an
 *    enrollment group and a bulk operation of either kind;
 *  - the service API's header helpers from the same module (etags, page
 *    sizes, continuation tokens) on the input as text.
 * Besides "no crash, no leak" it checks the contract: normalisation is
 * idempotent and leaves a document with a valid id, a symmetric key pair
 * (or X.509 certificates with their computed info),
 * the defaults filled in and no read-only field; a bulk parse leaves the
 * body as it was and nothing to free on failure; every helper's output
 * satisfies the same helper again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "api/enrollment_json.h"
#include "api/json_body.h"
#include "provd/plugin.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PATH_ID[] = "fuzz-device-01";

static void require(int ok)
{
  if (!ok)
    abort();
}

/* ---- device API ---- */

/* Read as both APIs read bodies (json_body.h). */
static json_t *read_body(const uint8_t *data, size_t size)
{
  enum json_body_status why;
  json_t *body = json_body_read("application/json", (const char *)data, size,
                                SIZE_MAX, JSON_BODY_REQUIRED, &why);
  require((body != NULL) == (why == JSON_BODY_OK));
  require(!body || json_is_object(body));
  return body;
}

/* The device API then only looks up members. */
static void fuzz_device_request(const uint8_t *data, size_t size)
{
  json_error_t jerr;
  json_t *body = read_body(data, size);
  if (!body)
    return;
  /* Serialising and parsing again gives the same document (the engine
   * stores and forwards bodies and payloads this way). */
  char *text = json_dumps(body, JSON_COMPACT);
  require(text != NULL);
  json_t *again = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  require(again && json_equal(body, again));
  json_decref(again);
  free(text);
  json_decref(body);
}

/* ---- service API: single documents ---- */

static void check_symmetric_keys(const json_t *sym)
{
  require(json_is_string(json_object_get(sym, "primaryKey")));
  require(json_is_string(json_object_get(sym, "secondaryKey")));
}

/* x509: the certificates the kind holds, each with its computed info, or
 * (groups) the names of registered CAs. */
static void check_x509_attestation(enum enrollment_kind kind,
                                   const json_t *x509)
{
  const char *list = kind == ENROLLMENT_GROUP ? "signingCertificates"
                                              : "clientCertificates";
  const json_t *refs = json_object_get(x509, "caReferences");
  if (kind == ENROLLMENT_GROUP && refs) {
    require(json_is_string(json_object_get(refs, "primary")));
    return;
  }
  const json_t *primary = json_object_get(json_object_get(x509, list),
                                          "primary");
  require(json_is_string(json_object_get(primary, "certificate")));
  require(json_is_object(json_object_get(primary, "info")));
}

static int is_bool_member(const json_t *obj, const char *name)
{
  return json_is_boolean(json_object_get(obj, name));
}

static void check_normalized(enum enrollment_kind kind, const json_t *doc,
                             const char *path_id, const char *type)
{
  static const char *const read_only[] = {
      "etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc",
      "registrationState", NULL};
  const char *id =
      json_string_value(json_object_get(doc, enrollment_id_field(kind)));
  require(enrollment_id_valid(id));
  require(!path_id || strcasecmp(id, path_id) == 0);
  require(type && (strcmp(type, "symmetricKey") == 0 ||
                   strcmp(type, "x509") == 0));
  for (size_t i = 0; read_only[i]; i++)
    require(json_object_get(doc, read_only[i]) == NULL);
  const char *status =
      json_string_value(json_object_get(doc, "provisioningStatus"));
  require(status && (!strcmp(status, "enabled") ||
                     !strcmp(status, "disabled")));
  if (strcmp(type, "x509") == 0)
    check_x509_attestation(kind, json_object_get(json_object_get(
                                     doc, "attestation"), "x509"));
  else
    check_symmetric_keys(json_object_get(json_object_get(doc, "attestation"),
                                         "symmetricKey"));
  const json_t *rp = json_object_get(doc, "reprovisionPolicy");
  require(is_bool_member(rp, "updateHubAssignment"));
  require(is_bool_member(rp, "migrateDeviceData"));
  require(is_bool_member(json_object_get(doc, "capabilities"), "iotEdge"));
}

static void check_stamp(json_t *doc)
{
  require(enrollment_stamp(doc, "2026-11-22T18:08:53.278Z",
                           "2026-11-22T18:08:54.318Z",
                           "\"9adbc71c-be33-41b2-8608-9577cf10d5df\"") ==
          PROVD_OK);
  const char *etag = json_string_value(json_object_get(doc, "etag"));
  require(etag && etag[0] == '"');
  require(json_is_string(json_object_get(doc, "createdDateTimeUtc")));
}

static void fuzz_normalize(enum enrollment_kind kind, const json_t *body,
                           const char *path_id)
{
  json_t *doc = json_deep_copy(body);
  require(doc != NULL);
  const char *type = NULL;
  struct provd_err err;
  perr_clear(&err);
  int rc = enrollment_normalize(kind, doc, path_id, &type, &err);
  if (rc != PROVD_OK) {
    require(rc == PROVD_E_INVAL && err.code[0] && err.msg[0]);
    json_decref(doc);
    return;
  }
  check_normalized(kind, doc, path_id, type);
  /* Normalising a normalised document changes nothing (keys are there
   * now, so nothing random is generated either). */
  json_t *twice = json_deep_copy(doc);
  require(twice != NULL);
  require(enrollment_normalize(kind, twice, path_id, &type, &err) ==
          PROVD_OK);
  require(json_equal(doc, twice));
  json_decref(twice);
  check_stamp(doc);
  json_decref(doc);
}

/* ---- service API: bulk ---- */

static void check_bulk_items(enum enrollment_kind kind,
                             const struct bulk_request *b)
{
  require(b->n >= 1 && b->n <= ENROLLMENT_BULK_MAX);
  require(strcmp(enrollment_bulk_mode_name(b->mode), "unknown") != 0);
  for (size_t i = 0; i < b->n; i++) {
    const struct bulk_item *it = &b->items[i];
    require(enrollment_id_valid(it->id) && json_is_object(it->doc));
    require((b->mode == BULK_UPDATE_IF_MATCH) == (it->etag[0] != '\0'));
    if (b->mode == BULK_DELETE)
      continue;
    const char *doc_id =
        json_string_value(json_object_get(it->doc, enrollment_id_field(kind)));
    require(doc_id && strcmp(doc_id, it->id) == 0);
    require(it->attestation_type != NULL);
  }
}

static void fuzz_bulk(enum enrollment_kind kind, const json_t *body)
{
  json_t *before = json_deep_copy(body);
  struct bulk_request *b = malloc(sizeof(*b));
  require(before && b);
  struct provd_err err;
  perr_clear(&err);
  int rc = enrollment_bulk_parse(kind, body, b, &err);
  require(json_equal(before, body)); /* the body is not modified */
  if (rc == PROVD_OK)
    check_bulk_items(kind, b);
  else
    require(rc == PROVD_E_INVAL && b->n == 0 && err.msg[0]);
  enrollment_bulk_clear(b);
  require(b->n == 0);
  free(b);
  json_decref(before);
}

static void fuzz_service_body(const uint8_t *data, size_t size)
{
  json_t *body = read_body(data, size);
  if (!body)
    return;
  static const enum enrollment_kind kinds[] = {ENROLLMENT_INDIVIDUAL,
                                               ENROLLMENT_GROUP};
  for (size_t k = 0; k < 2; k++) {
    /* PUT with the id only in the body, then with the id in the path
     * (the body's own id when it has a valid one, so that both the match
     * and the fill-in paths are reached). */
    const char *own = json_string_value(
        json_object_get(body, enrollment_id_field(kinds[k])));
    fuzz_normalize(kinds[k], body, NULL);
    fuzz_normalize(kinds[k], body, enrollment_id_valid(own) ? own : PATH_ID);
    fuzz_bulk(kinds[k], body);
  }
  json_decref(body);
}

/* ---- service API: header helpers ---- */

static void fuzz_etag(const char *text)
{
  char out[ENROLLMENT_ETAG_MAX + 3], again[ENROLLMENT_ETAG_MAX + 3];
  if (enrollment_etag_normalize(text, out, sizeof(out)) != 0)
    return;
  size_t n = strlen(out);
  require(strcmp(out, "*") == 0 ||
          (n >= 2 && out[0] == '"' && out[n - 1] == '"'));
  /* Adding the quotes may take an output past the input limit. */
  if (n > ENROLLMENT_ETAG_MAX)
    return;
  require(enrollment_etag_normalize(out, again, sizeof(again)) == 0);
  require(strcmp(out, again) == 0);
}

static void fuzz_paging(const char *text)
{
  size_t n = 0;
  if (page_size_parse(text, &n) == 0)
    require(n >= 1 && n <= PAGE_SIZE_MAX);

  char id[ENROLLMENT_ID_MAX + 1];
  if (continuation_decode(text, id, sizeof(id)) == 0) {
    require(enrollment_id_valid(id));
    /* Strict base64: the token is the canonical encoding of its id. */
    char *token = continuation_encode(id);
    require(token && strcmp(token, text) == 0);
    free(token);
  }
  if (enrollment_id_valid(text)) {
    char *token = continuation_encode(text);
    require(token != NULL);
    require(continuation_decode(token, id, sizeof(id)) == 0);
    require(strcmp(id, text) == 0);
    free(token);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_device_request(data, size);
  fuzz_service_body(data, size);

  char *text = malloc(size + 1);
  require(text != NULL);
  memcpy(text, data, size);
  text[size] = '\0';
  fuzz_etag(text);
  fuzz_paging(text);
  free(text);
  return 0;
}
