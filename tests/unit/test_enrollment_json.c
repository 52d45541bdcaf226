/* Validation and normalisation of service-API documents
 * (core/api/enrollment_json.c). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "api/enrollment_json.h"
#include "provd/plugin.h"
#include "util/b64.h"

/* The individual enrollment the Node service SDK sends (trace e). */
static const char *TRACE_ENROLLMENT =
    "{\"registrationId\":\"enroll-test-01\",\"deviceId\":\"enroll-test-01\","
    "\"provisioningStatus\":\"enabled\",\"attestation\":{\"type\":"
    "\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":"
    "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"secondaryKey\":"
    "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}}}";

static json_t *parse(const char *text)
{
  json_error_t jerr;
  json_t *j = json_loads(text, 0, &jerr);
  ck_assert_msg(j != NULL, "test JSON does not parse: %s", jerr.text);
  return j;
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
  const json_t *v = json_object_get(obj, a);
  if (b)
    v = json_object_get(v, b);
  return json_string_value(v);
}

/* Normalises text as an individual enrollment at path id `path_id`;
 * returns the status and leaves the message in err. */
static int normalize_text(enum enrollment_kind kind, const char *text,
                          const char *path_id, struct provd_err *err,
                          json_t **out)
{
  json_t *doc = parse(text);
  perr_clear(err);
  int rc = enrollment_normalize(kind, doc, path_id, NULL, err);
  if (out)
    *out = doc;
  else
    json_decref(doc);
  return rc;
}

static void assert_rejected(enum enrollment_kind kind, const char *text,
                            const char *needle)
{
  struct provd_err err;
  int rc = normalize_text(kind, text, NULL, &err, NULL);
  ck_assert_int_eq(rc, PROVD_E_INVAL);
  ck_assert_msg(strstr(err.msg, needle) != NULL,
                "message '%s' lacks '%s' for %s", err.msg, needle, text);
}

static size_t decoded_len(const char *b64)
{
  uint8_t raw[128];
  size_t n = 0;
  ck_assert_int_eq(b64_decode(b64, raw, sizeof(raw), &n), 0);
  return n;
}

/* ---- ids ---- */

START_TEST(test_id_rules)
{
  char longest[ENROLLMENT_ID_MAX + 2];
  memset(longest, 'a', sizeof(longest));
  longest[ENROLLMENT_ID_MAX] = '\0';
  ck_assert(enrollment_id_valid(longest));
  longest[ENROLLMENT_ID_MAX] = 'a';
  longest[ENROLLMENT_ID_MAX + 1] = '\0';
  ck_assert(!enrollment_id_valid(longest));

  ck_assert(enrollment_id_valid("my-device-001"));
  ck_assert(enrollment_id_valid("a.b_c:d-"));
  ck_assert(enrollment_id_valid("X"));
  ck_assert(!enrollment_id_valid(""));
  ck_assert(!enrollment_id_valid(NULL));
  ck_assert(!enrollment_id_valid("dev."));
  ck_assert(!enrollment_id_valid("dev_"));
  ck_assert(!enrollment_id_valid("dev:"));
  ck_assert(!enrollment_id_valid("a/b"));
  ck_assert(!enrollment_id_valid("a b"));
  ck_assert(!enrollment_id_valid("a%41"));
  ck_assert(!enrollment_id_valid("d\xc3\xa9v"));
  /* The device API's rule: an id must start with a letter or digit, or a
   * device could never register against the enrollment. */
  ck_assert(!enrollment_id_valid("-dev"));
  ck_assert(!enrollment_id_valid(".dev"));
  ck_assert(!enrollment_id_valid("_dev"));
  ck_assert(!enrollment_id_valid(":dev"));
}
END_TEST

/* ---- individual enrollments ---- */

START_TEST(test_trace_document_keeps_keys_and_gets_defaults)
{
  json_t *doc = parse(TRACE_ENROLLMENT);
  struct provd_err err;
  const char *type = NULL;
  ck_assert_int_eq(enrollment_normalize(ENROLLMENT_INDIVIDUAL, doc,
                                        "enroll-test-01", &type, &err),
                   PROVD_OK);
  ck_assert_str_eq(type, "symmetricKey");
  ck_assert_str_eq(str_at(doc, "registrationId", NULL), "enroll-test-01");
  ck_assert_str_eq(str_at(doc, "deviceId", NULL), "enroll-test-01");
  ck_assert_str_eq(str_at(doc, "provisioningStatus", NULL), "enabled");
  const json_t *sym =
      json_object_get(json_object_get(doc, "attestation"), "symmetricKey");
  ck_assert_str_eq(str_at(sym, "primaryKey", NULL),
                   "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  ck_assert_str_eq(str_at(sym, "secondaryKey", NULL),
                   "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  const json_t *rp = json_object_get(doc, "reprovisionPolicy");
  ck_assert(json_is_true(json_object_get(rp, "updateHubAssignment")));
  ck_assert(json_is_true(json_object_get(rp, "migrateDeviceData")));
  ck_assert(json_is_false(
      json_object_get(json_object_get(doc, "capabilities"), "iotEdge")));
  ck_assert_ptr_null(json_object_get(doc, "allocationPolicy"));
  json_decref(doc);
}
END_TEST

START_TEST(test_missing_keys_are_generated)
{
  struct provd_err err;
  json_t *a = NULL, *b = NULL;
  const char *text = "{\"registrationId\":\"dev-1\",\"attestation\":"
                     "{\"type\":\"symmetricKey\"}}";
  ck_assert_int_eq(normalize_text(ENROLLMENT_INDIVIDUAL, text, "dev-1", &err,
                                  &a),
                   PROVD_OK);
  ck_assert_int_eq(normalize_text(ENROLLMENT_INDIVIDUAL, text, "dev-1", &err,
                                  &b),
                   PROVD_OK);
  const json_t *sa =
      json_object_get(json_object_get(a, "attestation"), "symmetricKey");
  const json_t *sb =
      json_object_get(json_object_get(b, "attestation"), "symmetricKey");
  const char *p1 = str_at(sa, "primaryKey", NULL);
  const char *s1 = str_at(sa, "secondaryKey", NULL);
  ck_assert_ptr_nonnull(p1);
  ck_assert_ptr_nonnull(s1);
  ck_assert_uint_eq(decoded_len(p1), 64);
  ck_assert_uint_eq(decoded_len(s1), 64);
  ck_assert_str_ne(p1, s1);
  ck_assert_str_ne(p1, str_at(sb, "primaryKey", NULL));
  ck_assert_str_eq(str_at(a, "provisioningStatus", NULL), "enabled");
  json_decref(a);
  json_decref(b);
}
END_TEST

START_TEST(test_only_missing_key_is_generated)
{
  struct provd_err err;
  json_t *doc = NULL;
  const char *key = "AAECAwQFBgcICQoLDA0ODw=="; /* 16 bytes: the minimum */
  char text[256];
  snprintf(text, sizeof(text),
           "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":"
           "{\"primaryKey\":\"%s\",\"secondaryKey\":null}}}",
           key);
  ck_assert_int_eq(normalize_text(ENROLLMENT_INDIVIDUAL, text, "dev-2", &err,
                                  &doc),
                   PROVD_OK);
  const json_t *sym =
      json_object_get(json_object_get(doc, "attestation"), "symmetricKey");
  ck_assert_str_eq(str_at(sym, "primaryKey", NULL), key);
  ck_assert_uint_eq(decoded_len(str_at(sym, "secondaryKey", NULL)), 64);
  /* the id is taken from the path when the body has none, and put first */
  ck_assert_str_eq(str_at(doc, "registrationId", NULL), "dev-2");
  ck_assert_str_eq(json_object_iter_key(json_object_iter(doc)),
                   "registrationId");
  json_decref(doc);
}
END_TEST

START_TEST(test_bad_keys_rejected)
{
  /* 8 bytes, 65 bytes, not base64, not a string */
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"attestation\":{\"type\":"
                  "\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":"
                  "\"AAECAwQFBgc=\"}}}",
                  "primaryKey");
  char text[512];
  char *big = NULL;
  uint8_t raw[65] = {0};
  big = b64_encode(raw, sizeof(raw));
  snprintf(text, sizeof(text),
           "{\"registrationId\":\"d\",\"attestation\":{\"type\":"
           "\"symmetricKey\",\"symmetricKey\":{\"secondaryKey\":\"%s\"}}}",
           big);
  free(big);
  assert_rejected(ENROLLMENT_INDIVIDUAL, text, "secondaryKey");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"attestation\":{\"type\":"
                  "\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":"
                  "\"not base64 at all!\"}}}",
                  "primaryKey");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"attestation\":{\"type\":"
                  "\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":42}}}",
                  "primaryKey");
}
END_TEST

START_TEST(test_read_only_fields_dropped_unknown_kept)
{
  struct provd_err err;
  json_t *doc = NULL;
  const char *text =
      "{\"registrationId\":\"dev-3\",\"etag\":\"\\\"x\\\"\","
      "\"createdDateTimeUtc\":\"2000-01-01T00:00:00Z\","
      "\"lastUpdatedDateTimeUtc\":\"2000-01-01T00:00:00Z\","
      "\"registrationState\":{\"status\":\"assigned\"},"
      "\"futureField\":{\"a\":[1,2]},"
      "\"attestation\":{\"type\":\"symmetricKey\"}}";
  ck_assert_int_eq(normalize_text(ENROLLMENT_INDIVIDUAL, text, "dev-3", &err,
                                  &doc),
                   PROVD_OK);
  ck_assert_ptr_null(json_object_get(doc, "etag"));
  ck_assert_ptr_null(json_object_get(doc, "createdDateTimeUtc"));
  ck_assert_ptr_null(json_object_get(doc, "lastUpdatedDateTimeUtc"));
  ck_assert_ptr_null(json_object_get(doc, "registrationState"));
  json_t *want = parse("{\"a\":[1,2]}");
  ck_assert(json_equal(json_object_get(doc, "futureField"), want));
  json_decref(want);
  json_decref(doc);
}
END_TEST

START_TEST(test_path_id_must_match)
{
  struct provd_err err;
  const char *text = "{\"registrationId\":\"Dev-4\",\"attestation\":"
                     "{\"type\":\"symmetricKey\"}}";
  ck_assert_int_eq(normalize_text(ENROLLMENT_INDIVIDUAL, text, "dev-4", &err,
                                  NULL),
                   PROVD_OK);
  ck_assert_int_eq(normalize_text(ENROLLMENT_INDIVIDUAL, text, "dev-5", &err,
                                  NULL),
                   PROVD_E_INVAL);
  ck_assert(strstr(err.msg, "does not match") != NULL);
  /* bulk items (no path) need the id in the body */
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "registrationId is required");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"bad id\",\"attestation\":"
                  "{\"type\":\"symmetricKey\"}}",
                  "not a valid id");
}
END_TEST

START_TEST(test_unsupported_attestation_types)
{
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"x509-device-01\",\"attestation\":"
                  "{\"type\":\"x509\",\"x509\":{\"clientCertificates\":{}}}}",
                  "attestation.x509.clientCertificates.primary is required");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"x509-device-01\",\"attestation\":"
                  "{\"type\":\"x509\",\"x509\":{\"clientCertificates\":"
                  "{\"primary\":{\"certificate\":\"-----BEGIN PRIVATE KEY-----"
                  "\\nMC4CAQAwBQYDK2VwBCIEIDz7u6xOu1VGSR2WzkCBvlS4FoTuDM1P3zXo"
                  "eIA1vH4z\\n-----END PRIVATE KEY-----\\n\"}}}}}",
                  "is a private key, not a certificate");
  assert_rejected(ENROLLMENT_GROUP,
                  "{\"enrollmentGroupId\":\"g\",\"attestation\":"
                  "{\"type\":\"x509\",\"x509\":{\"caReferences\":"
                  "{\"primary\":\"my-ca\"},\"crl\":\"x\"}}}",
                  "not both");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"attestation\":"
                  "{\"type\":\"x509\",\"x509\":{\"caReferences\":"
                  "{\"primary\":\"my-ca\"}}}}",
                  "caReferences are for enrollment groups");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"t\",\"attestation\":{\"type\":"
                  "\"magic\"}}",
                  "attestation.type has an unsupported value");
  assert_rejected(ENROLLMENT_INDIVIDUAL, "{\"registrationId\":\"t\"}",
                  "attestation is required");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"t\",\"attestation\":\"x\"}",
                  "attestation must be an object");
}
END_TEST

START_TEST(test_tpm_attestation)
{
  struct provd_err err;
  json_t *doc = NULL;
  int rc = normalize_text(ENROLLMENT_INDIVIDUAL,
                          "{\"registrationId\":\"t\",\"attestation\":"
                          "{\"type\":\"TPM\",\"tpm\":{\"endorsementKey\":"
                          "\"AToAAQAL\"}}}",
                          NULL, &err, &doc);
  ck_assert_msg(rc == PROVD_OK, "%s", err.msg);
  json_t *att = json_object_get(doc, "attestation");
  ck_assert_str_eq(json_string_value(json_object_get(att, "type")), "tpm");
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(att, "tpm"), "endorsementKey")),
                   "AToAAQAL");
  json_decref(doc);
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"t\",\"attestation\":"
                  "{\"type\":\"tpm\",\"tpm\":{}}}",
                  "attestation.tpm.endorsementKey must be base64");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"t\",\"attestation\":"
                  "{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"A!\"}}}",
                  "attestation.tpm.endorsementKey must be base64");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"t\",\"attestation\":"
                  "{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"AAAA\","
                  "\"storageRootKey\":7}}}",
                  "attestation.tpm.storageRootKey must be base64");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"t\",\"attestation\":"
                  "{\"type\":\"tpm\"}}",
                  "attestation.tpm must be an object");
  assert_rejected(ENROLLMENT_GROUP,
                  "{\"enrollmentGroupId\":\"g\",\"attestation\":"
                  "{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"AAAA\"}}}",
                  "enrollment groups cannot use tpm attestation");
}
END_TEST

START_TEST(test_enums_canonicalised)
{
  struct provd_err err;
  json_t *doc = NULL;
  const char *text =
      "{\"registrationId\":\"d\",\"provisioningStatus\":\"Disabled\","
      "\"allocationPolicy\":\"GEOLATENCY\",\"attestation\":{\"type\":"
      "\"symmetrickey\"}}";
  ck_assert_int_eq(
      normalize_text(ENROLLMENT_INDIVIDUAL, text, NULL, &err, &doc),
      PROVD_OK);
  ck_assert_str_eq(str_at(doc, "provisioningStatus", NULL), "disabled");
  ck_assert_str_eq(str_at(doc, "allocationPolicy", NULL), "geoLatency");
  ck_assert_str_eq(str_at(doc, "attestation", "type"), "symmetricKey");
  json_decref(doc);
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"provisioningStatus\":"
                  "\"paused\",\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "provisioningStatus");
  /* another name is a third-party plugin's (the service API checks one
   * is loaded); it must still look like a name */
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"allocationPolicy\":\"no way!\","
                  "\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "allocationPolicy");
  ck_assert_int_eq(
      normalize_text(ENROLLMENT_INDIVIDUAL,
                     "{\"registrationId\":\"d\",\"allocationPolicy\":"
                     "\"nearest-dc\",\"attestation\":{\"type\":"
                     "\"symmetricKey\"}}",
                     NULL, &err, &doc),
      PROVD_OK);
  ck_assert_str_eq(str_at(doc, "allocationPolicy", NULL), "nearest-dc");
  json_decref(doc);
  ck_assert(enrollment_policy_is_dps("geoLatency"));
  ck_assert(!enrollment_policy_is_dps("nearest-dc"));
}
END_TEST

/* DPS: static names exactly one hub; custom has its webhook, a URL. */
START_TEST(test_policy_needs)
{
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"allocationPolicy\":\"static\","
                  "\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "exactly one hub");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"allocationPolicy\":\"static\","
                  "\"iotHubs\":[\"a\",\"b\"],"
                  "\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "exactly one hub");
  struct provd_err err;
  ck_assert_int_eq(
      normalize_text(ENROLLMENT_INDIVIDUAL,
                     "{\"registrationId\":\"d\",\"allocationPolicy\":"
                     "\"static\",\"iotHubHostName\":\"h.example.net\","
                     "\"attestation\":{\"type\":\"symmetricKey\"}}",
                     NULL, &err, NULL),
      PROVD_OK);
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"allocationPolicy\":\"custom\","
                  "\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "customAllocationDefinition");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"allocationPolicy\":\"custom\","
                  "\"customAllocationDefinition\":{\"webhookUrl\":"
                  "\"ftp://x/y\",\"apiVersion\":\"2021-10-01\"},"
                  "\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "webhookUrl");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"initialTwin\":[1],"
                  "\"attestation\":{\"type\":\"symmetricKey\"}}",
                  "initialTwin");
}
END_TEST

#define SYM "\"attestation\":{\"type\":\"symmetricKey\"}"

START_TEST(test_field_types_checked)
{
  enum enrollment_kind k = ENROLLMENT_INDIVIDUAL;
  assert_rejected(k, "{\"registrationId\":\"d\",\"iotHubs\":\"h\"," SYM "}",
                  "iotHubs");
  assert_rejected(k, "{\"registrationId\":\"d\",\"iotHubs\":[1]," SYM "}",
                  "iotHubs");
  assert_rejected(k, "{\"registrationId\":\"d\",\"iotHubs\":[\"\"]," SYM "}",
                  "iotHubs");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"iotHubHostName\":[]," SYM "}",
                  "iotHubHostName");
  assert_rejected(k, "{\"registrationId\":\"d\",\"initialTwin\":[]," SYM "}",
                  "initialTwin");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"credentialPolicyName\":7,"
                  SYM "}",
                  "credentialPolicyName");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"credentialPolicyName\":\"\","
                  SYM "}",
                  "credentialPolicyName");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"reprovisionPolicy\":"
                  "{\"migrateDeviceData\":\"no\"}," SYM "}",
                  "reprovisionPolicy.migrateDeviceData");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"capabilities\":{\"iotEdge\":1},"
                  SYM "}",
                  "capabilities.iotEdge");
  assert_rejected(k, "{\"registrationId\":\"d\",\"deviceId\":\"a/b\"," SYM "}",
                  "deviceId");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"optionalDeviceInformation\":3,"
                  SYM "}",
                  "optionalDeviceInformation");
  assert_rejected(k,
                  "{\"registrationId\":\"d\",\"customAllocationDefinition\":"
                  "{\"webhookUrl\":\"https://x\"}," SYM "}",
                  "apiVersion");
  assert_rejected(k, "[1,2]", "must be a JSON object");

  /* 51 hubs is one too many; 50 is fine */
  char text[2048];
  size_t o = (size_t)snprintf(text, sizeof(text),
                              "{\"registrationId\":\"d\"," SYM
                              ",\"iotHubs\":[");
  for (int i = 0; i < ENROLLMENT_HUBS_MAX; i++)
    o += (size_t)snprintf(text + o, sizeof(text) - o, "%s\"h%d.example\"",
                          i ? "," : "", i);
  snprintf(text + o, sizeof(text) - o, "]}");
  struct provd_err err;
  ck_assert_int_eq(normalize_text(k, text, NULL, &err, NULL), PROVD_OK);
  snprintf(text + o, sizeof(text) - o, ",\"one-more\"]}");
  ck_assert_int_eq(normalize_text(k, text, NULL, &err, NULL), PROVD_E_INVAL);
}
END_TEST

START_TEST(test_partial_objects_get_defaults_nulls_removed)
{
  struct provd_err err;
  json_t *doc = NULL;
  const char *text =
      "{\"registrationId\":\"d\",\"deviceId\":null,\"iotHubs\":null,"
      "\"reprovisionPolicy\":{\"updateHubAssignment\":false},"
      "\"capabilities\":{\"iotEdge\":true},\"initialTwin\":{\"tags\":"
      "{\"a\":1},\"properties\":{\"desired\":{\"b\":2}}}," SYM "}";
  ck_assert_int_eq(
      normalize_text(ENROLLMENT_INDIVIDUAL, text, NULL, &err, &doc),
      PROVD_OK);
  ck_assert_ptr_null(json_object_get(doc, "deviceId"));
  ck_assert_ptr_null(json_object_get(doc, "iotHubs"));
  const json_t *rp = json_object_get(doc, "reprovisionPolicy");
  ck_assert(json_is_false(json_object_get(rp, "updateHubAssignment")));
  ck_assert(json_is_true(json_object_get(rp, "migrateDeviceData")));
  ck_assert(json_is_true(
      json_object_get(json_object_get(doc, "capabilities"), "iotEdge")));
  ck_assert_int_eq(json_integer_value(json_object_get(
                       json_object_get(json_object_get(doc, "initialTwin"),
                                       "tags"),
                       "a")),
                   1);
  json_decref(doc);
}
END_TEST

/* ---- groups ---- */

START_TEST(test_group_rules)
{
  struct provd_err err;
  json_t *doc = NULL;
  const char *text =
      "{\"enrollmentGroupId\":\"group-test-01\",\"provisioningStatus\":"
      "\"enabled\",\"attestation\":{\"type\":\"symmetricKey\"}}";
  ck_assert_int_eq(normalize_text(ENROLLMENT_GROUP, text, "group-test-01",
                                  &err, &doc),
                   PROVD_OK);
  ck_assert_str_eq(str_at(doc, "enrollmentGroupId", NULL), "group-test-01");
  ck_assert_ptr_nonnull(str_at(json_object_get(doc, "attestation"),
                               "symmetricKey", "primaryKey"));
  json_decref(doc);
  assert_rejected(ENROLLMENT_GROUP,
                  "{\"enrollmentGroupId\":\"g\",\"deviceId\":\"d\"," SYM "}",
                  "deviceId is not valid in an enrollment group");
  assert_rejected(ENROLLMENT_GROUP,
                  "{\"enrollmentGroupId\":\"g\",\"registrationId\":\"d\","
                  SYM "}",
                  "registrationId is not valid");
  assert_rejected(ENROLLMENT_GROUP,
                  "{\"enrollmentGroupId\":\"g\",\"optionalDeviceInformation\":"
                  "{}," SYM "}",
                  "optionalDeviceInformation is not valid");
  assert_rejected(ENROLLMENT_INDIVIDUAL,
                  "{\"registrationId\":\"d\",\"enrollmentGroupId\":\"g\","
                  SYM "}",
                  "enrollmentGroupId is not valid");
  assert_rejected(ENROLLMENT_GROUP, "{\"registrationId\":\"g\"," SYM "}",
                  "is not valid in an enrollment group");
}
END_TEST

/* ---- stamps and etags ---- */

START_TEST(test_stamp_replaces_and_orders_last)
{
  json_t *doc = parse("{\"etag\":\"old\",\"a\":1,\"createdDateTimeUtc\":"
                      "\"old\",\"b\":2}");
  ck_assert_int_eq(enrollment_stamp(doc, "2022-08-31T22:02:50.5163352Z",
                                    "2022-09-01T00:00:00.0000000Z",
                                    "\"e1\""),
                   PROVD_OK);
  char *text = json_dumps(doc, JSON_COMPACT);
  ck_assert_str_eq(text, "{\"a\":1,\"b\":2,"
                         "\"createdDateTimeUtc\":"
                         "\"2022-08-31T22:02:50.5163352Z\","
                         "\"lastUpdatedDateTimeUtc\":"
                         "\"2022-09-01T00:00:00.0000000Z\","
                         "\"etag\":\"\\\"e1\\\"\"}");
  free(text);
  json_decref(doc);
}
END_TEST

START_TEST(test_etag_normalize)
{
  char out[ENROLLMENT_ETAG_MAX + 3];
  ck_assert_int_eq(enrollment_etag_normalize(
                       "\"ba35ec4f-458e-47a2-9fde-2755502ee86e\"", out,
                       sizeof(out)),
                   0);
  ck_assert_str_eq(out, "\"ba35ec4f-458e-47a2-9fde-2755502ee86e\"");
  ck_assert_int_eq(enrollment_etag_normalize(" abc ", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "\"abc\"");
  ck_assert_int_eq(enrollment_etag_normalize("W/\"abc\"", out, sizeof(out)),
                   0);
  ck_assert_str_eq(out, "\"abc\"");
  ck_assert_int_eq(enrollment_etag_normalize("*", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "*");
  ck_assert_int_eq(enrollment_etag_normalize("", out, sizeof(out)), -1);
  ck_assert_int_eq(enrollment_etag_normalize("   ", out, sizeof(out)), -1);
  char big[ENROLLMENT_ETAG_MAX + 2];
  memset(big, 'e', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(enrollment_etag_normalize(big, out, sizeof(out)), -1);
}
END_TEST

/* ---- bulk ---- */

static int bulk_text(enum enrollment_kind kind, const char *text,
                     struct bulk_request *b, struct provd_err *err)
{
  json_t *body = parse(text);
  perr_clear(err);
  int rc = enrollment_bulk_parse(kind, body, b, err);
  json_decref(body);
  return rc;
}

START_TEST(test_bulk_create)
{
  struct bulk_request b;
  struct provd_err err;
  const char *text =
      "{\"mode\":\"create\",\"enrollments\":["
      "{\"registrationId\":\"b-1\",\"etag\":\"\\\"zz\\\"\"," SYM "},"
      "{\"registrationId\":\"b-2\",\"provisioningStatus\":\"disabled\"," SYM
      "}]}";
  json_t *body = parse(text);
  ck_assert_int_eq(enrollment_bulk_parse(ENROLLMENT_INDIVIDUAL, body, &b,
                                         &err),
                   PROVD_OK);
  ck_assert_int_eq(b.mode, BULK_CREATE);
  ck_assert_uint_eq(b.n, 2);
  ck_assert_str_eq(b.items[0].id, "b-1");
  ck_assert_str_eq(b.items[1].id, "b-2");
  ck_assert_str_eq(b.items[0].attestation_type, "symmetricKey");
  ck_assert_str_eq(b.items[0].etag, ""); /* only updateIfMatchETag uses it */
  ck_assert_ptr_null(json_object_get(b.items[0].doc, "etag"));
  ck_assert_ptr_nonnull(str_at(json_object_get(b.items[1].doc, "attestation"),
                               "symmetricKey", "primaryKey"));
  /* the request body itself is left alone */
  const json_t *first =
      json_array_get(json_object_get(body, "enrollments"), 0);
  ck_assert_ptr_nonnull(json_object_get(first, "etag"));
  ck_assert_ptr_null(json_object_get(json_object_get(first, "attestation"),
                                     "symmetricKey"));
  ck_assert_str_eq(enrollment_bulk_mode_name(b.mode), "create");
  enrollment_bulk_clear(&b);
  ck_assert_uint_eq(b.n, 0);
  json_decref(body);
}
END_TEST

START_TEST(test_bulk_modes_and_limits)
{
  struct bulk_request b;
  struct provd_err err;
  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL,
                             "{\"mode\":\"UpdateIfMatchEtag\",\"enrollments\":"
                             "[{\"registrationId\":\"b-1\",\"etag\":\"abc\","
                             SYM "}]}",
                             &b, &err),
                   PROVD_OK);
  ck_assert_int_eq(b.mode, BULK_UPDATE_IF_MATCH);
  ck_assert_str_eq(b.items[0].etag, "\"abc\"");
  enrollment_bulk_clear(&b);

  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL,
                             "{\"mode\":\"updateIfMatchETag\",\"enrollments\":"
                             "[{\"registrationId\":\"b-1\"," SYM "}]}",
                             &b, &err),
                   PROVD_E_INVAL);
  ck_assert(strstr(err.msg, "etag is required") != NULL);

  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL,
                             "{\"mode\":\"merge\",\"enrollments\":[]}", &b,
                             &err),
                   PROVD_E_INVAL);
  ck_assert(strstr(err.msg, "mode") != NULL);
  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL,
                             "{\"mode\":\"create\",\"enrollments\":[]}", &b,
                             &err),
                   PROVD_E_INVAL);
  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL,
                             "{\"mode\":\"create\",\"enrollmentGroups\":[{"
                             "\"enrollmentGroupId\":\"g\"," SYM "}]}",
                             &b, &err),
                   PROVD_E_INVAL);

  /* 11 items is one too many */
  char text[4096];
  size_t o = (size_t)snprintf(text, sizeof(text),
                              "{\"mode\":\"delete\",\"enrollments\":[");
  for (int i = 0; i <= ENROLLMENT_BULK_MAX; i++)
    o += (size_t)snprintf(text + o, sizeof(text) - o,
                          "%s{\"registrationId\":\"d-%d\"}", i ? "," : "", i);
  snprintf(text + o, sizeof(text) - o, "]}");
  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL, text, &b, &err),
                   PROVD_E_INVAL);
  ck_assert(strstr(err.msg, "1 to 10") != NULL);
}
END_TEST

START_TEST(test_bulk_bad_item_named)
{
  struct bulk_request b;
  struct provd_err err;
  ck_assert_int_eq(bulk_text(ENROLLMENT_INDIVIDUAL,
                             "{\"mode\":\"update\",\"enrollments\":["
                             "{\"registrationId\":\"ok-1\"," SYM "},"
                             "{\"registrationId\":\"bad-2\",\"attestation\":"
                             "{\"type\":\"x509\"}}]}",
                             &b, &err),
                   PROVD_E_INVAL);
  ck_assert_msg(strstr(err.msg, "item 1:") != NULL &&
                    strstr(err.msg, "x509") != NULL,
                "%s", err.msg);
  ck_assert_uint_eq(b.n, 0);
}
END_TEST

START_TEST(test_bulk_delete_and_groups)
{
  struct bulk_request b;
  struct provd_err err;
  ck_assert_int_eq(bulk_text(ENROLLMENT_GROUP,
                             "{\"mode\":\"delete\",\"enrollmentGroups\":["
                             "{\"enrollmentGroupId\":\"g-1\"},"
                             "{\"enrollmentGroupId\":\"g-2\","
                             "\"etag\":\"x\"}]}",
                             &b, &err),
                   PROVD_OK);
  ck_assert_uint_eq(b.n, 2);
  ck_assert_str_eq(b.items[1].id, "g-2");
  ck_assert_ptr_null(b.items[0].attestation_type);
  enrollment_bulk_clear(&b);
  ck_assert_int_eq(bulk_text(ENROLLMENT_GROUP,
                             "{\"mode\":\"delete\",\"enrollmentGroups\":["
                             "{\"enrollmentGroupId\":\"g 1\"}]}",
                             &b, &err),
                   PROVD_E_INVAL);
  ck_assert(strstr(err.msg, "item 0:") != NULL);
}
END_TEST

/* Listings hand out documents without keys; everything else stays. */
START_TEST(test_strip_keys)
{
  json_t *doc = parse(TRACE_ENROLLMENT);
  json_t *before = json_deep_copy(doc);
  enrollment_strip_keys(doc);
  const json_t *sym =
      json_object_get(json_object_get(doc, "attestation"), "symmetricKey");
  ck_assert(json_is_object(sym));
  ck_assert_ptr_null(json_object_get(sym, "primaryKey"));
  ck_assert_ptr_null(json_object_get(sym, "secondaryKey"));
  char *text = json_dumps(doc, JSON_COMPACT);
  ck_assert_ptr_null(strstr(text, "AAECAwQF"));
  free(text);
  ck_assert_str_eq(str_at(doc, "attestation", "type"), "symmetricKey");
  ck_assert_str_eq(str_at(doc, "registrationId", NULL), "enroll-test-01");
  /* putting the keys back gives the original: nothing else was touched */
  json_object_update(json_object_get(json_object_get(doc, "attestation"),
                                     "symmetricKey"),
                     json_object_get(json_object_get(before, "attestation"),
                                     "symmetricKey"));
  ck_assert(json_equal(doc, before));
  /* documents without keys or without an attestation are left alone */
  json_t *bare = parse("{\"attestation\":{\"type\":\"x509\"}}");
  enrollment_strip_keys(bare);
  enrollment_strip_keys(NULL);
  ck_assert_int_eq(json_object_size(json_object_get(bare, "attestation")), 1);
  json_decref(bare);
  json_decref(before);
  json_decref(doc);
}
END_TEST

/* ---- paging ---- */

START_TEST(test_page_size)
{
  size_t n = 0;
  ck_assert_int_eq(page_size_parse(NULL, &n), 0);
  ck_assert_uint_eq(n, PAGE_SIZE_DEFAULT);
  ck_assert_int_eq(page_size_parse("10", &n), 0);
  ck_assert_uint_eq(n, 10);
  ck_assert_int_eq(page_size_parse("5000", &n), 0);
  ck_assert_uint_eq(n, PAGE_SIZE_MAX);
  ck_assert_int_eq(page_size_parse("99999999999999999999999", &n), -1);
  ck_assert_int_eq(page_size_parse("0", &n), -1);
  ck_assert_int_eq(page_size_parse("-1", &n), -1);
  ck_assert_int_eq(page_size_parse("ten", &n), -1);
  ck_assert_int_eq(page_size_parse("10x", &n), -1);
  ck_assert_int_eq(page_size_parse("", &n), -1);
}
END_TEST

START_TEST(test_continuation_round_trip)
{
  char out[ENROLLMENT_ID_MAX + 1];
  const char *ids[] = {"enroll-test-01", "a", "x:y.z_w-", "dev~?"};
  for (size_t i = 0; i < 3; i++) {
    char *tok = continuation_encode(ids[i]);
    ck_assert_ptr_nonnull(tok);
    ck_assert_ptr_null(strpbrk(tok, "+/="));
    ck_assert_int_eq(continuation_decode(tok, out, sizeof(out)), 0);
    ck_assert_str_eq(out, ids[i]);
    free(tok);
  }
  ck_assert_ptr_null(continuation_encode(ids[3]));

  char longest[ENROLLMENT_ID_MAX + 1];
  memset(longest, '9', ENROLLMENT_ID_MAX);
  longest[ENROLLMENT_ID_MAX] = '\0';
  char *tok = continuation_encode(longest);
  ck_assert_int_eq(continuation_decode(tok, out, sizeof(out)), 0);
  ck_assert_str_eq(out, longest);
  ck_assert_int_eq(continuation_decode(tok, out, 16), -1);
  free(tok);

  ck_assert_int_eq(continuation_decode("", out, sizeof(out)), -1);
  ck_assert_int_eq(continuation_decode("ZW5yb2xs=", out, sizeof(out)), -1);
  ck_assert_int_eq(continuation_decode("!!!!", out, sizeof(out)), -1);
  /* "a/b" is not an id, so its encoding is not a token of ours */
  ck_assert_int_eq(continuation_decode("YS9i", out, sizeof(out)), -1);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("enrollment_json");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_id_rules);
  tcase_add_test(tc, test_trace_document_keeps_keys_and_gets_defaults);
  tcase_add_test(tc, test_missing_keys_are_generated);
  tcase_add_test(tc, test_only_missing_key_is_generated);
  tcase_add_test(tc, test_bad_keys_rejected);
  tcase_add_test(tc, test_read_only_fields_dropped_unknown_kept);
  tcase_add_test(tc, test_path_id_must_match);
  tcase_add_test(tc, test_unsupported_attestation_types);
  tcase_add_test(tc, test_tpm_attestation);
  tcase_add_test(tc, test_enums_canonicalised);
  tcase_add_test(tc, test_policy_needs);
  tcase_add_test(tc, test_field_types_checked);
  tcase_add_test(tc, test_partial_objects_get_defaults_nulls_removed);
  tcase_add_test(tc, test_group_rules);
  tcase_add_test(tc, test_stamp_replaces_and_orders_last);
  tcase_add_test(tc, test_etag_normalize);
  tcase_add_test(tc, test_bulk_create);
  tcase_add_test(tc, test_bulk_modes_and_limits);
  tcase_add_test(tc, test_bulk_bad_item_named);
  tcase_add_test(tc, test_bulk_delete_and_groups);
  tcase_add_test(tc, test_strip_keys);
  tcase_add_test(tc, test_page_size);
  tcase_add_test(tc, test_continuation_round_trip);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
