/* libFuzzer target over the service-API bodies that fuzz_device_body does
 * not cover, read by the one body reader (core/api/json_body.c) and
 * checked by the functions the service API calls for them:
 *  - PUT /hubs/{name}: svc_hub_doc_check (core/api/service_hubs.c);
 *  - PUT /certificates/{name}: x509_ca_normalize, then
 *    x509_ca_keep_verification against the body as the old record;
 *  - POST /certificates/{name}/verify: x509_ca_verify_proof with the
 *    body's "certificate" as the proof, against the input normalised as a
 *    CA and given a verification code (core/api/x509_json.c);
 *  - POST /explain/{regId}: svc_explain_body_check (core/api/service_api.c),
 *    the body being optional there.
 * Besides "no crash, no leak" it checks the contract: a refusal says why;
 * an accepted hub body has only known, well-typed fields; a normalised CA
 * is named after the path, unverified, carries info and a PEM CRL (or
 * none), and normalises again to itself; a proof is accepted only for a
 * certificate whose CN is the code (never for random input), and then
 * spends the code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "api/json_body.h"
#include "api/service_internal.h"
#include "api/x509_json.h"
#include "provd/plugin.h"
#include "util/err.h"

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char CA_NAME[] = "fuzz-ca";

static void fuzz_hub(const json_t *body)
{
  char why[256] = "";
  if (svc_hub_doc_check(body, why, sizeof(why)) != 0) {
    require(why[0] != '\0');
    return;
  }
  static const char *const known[] = {"hostname", "weight",
                                      "applyAllocationPolicy", "region",
                                      NULL};
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    size_t i = 0;
    while (known[i] && strcmp(known[i], key) != 0)
      i++;
    require(known[i] != NULL);
  }
  const json_t *w = json_object_get(body, "weight");
  require(!w || (json_is_integer(w) && json_integer_value(w) >= 0));
}

static void check_ca(const json_t *doc)
{
  require(strcmp(json_string_value(json_object_get(doc, "name")),
                 CA_NAME) == 0);
  require(json_is_false(json_object_get(doc, "isVerified")));
  require(json_object_get(doc, "verificationCode") == NULL);
  require(json_is_string(json_object_get(doc, "certificate")));
  require(json_is_string(json_object_get(json_object_get(doc, "info"),
                                         "sha256Thumbprint")));
  const char *crl = json_string_value(json_object_get(doc, "crl"));
  require(json_object_get(doc, "crl") == NULL ||
          (crl && strncmp(crl, "-----BEGIN X509 CRL-----", 24) == 0));
}

/* Normalised CA + fresh code, then the body's certificate as the proof. */
static void fuzz_ca_verify(const json_t *ca, const json_t *body)
{
  json_t *doc = json_deep_copy(ca);
  require(doc != NULL);
  require(x509_ca_new_code(doc) == PROVD_OK);
  char code[X509_CA_CODE_CHARS + 1];
  const char *fresh =
      json_string_value(json_object_get(doc, "verificationCode"));
  require(fresh && strlen(fresh) == X509_CA_CODE_CHARS);
  memcpy(code, fresh, sizeof(code));
  struct provd_err err;
  perr_clear(&err);
  int rc = x509_ca_verify_proof(
      doc, json_string_value(json_object_get(body, "certificate")), &err);
  /* 128 random bits: no fuzzed certificate can hold the code as its CN. */
  require(rc == PROVD_E_INVAL && err.msg[0]);
  require(strcmp(json_string_value(json_object_get(doc, "verificationCode")),
                 code) == 0);
  require(json_is_false(json_object_get(doc, "isVerified")));
  json_decref(doc);
}

static void fuzz_ca(const json_t *body)
{
  json_t *doc = json_deep_copy(body);
  require(doc != NULL);
  struct provd_err err;
  perr_clear(&err);
  if (x509_ca_normalize(doc, CA_NAME, &err) != PROVD_OK) {
    require(err.msg[0] != '\0');
    json_decref(doc);
    return;
  }
  check_ca(doc);
  json_t *again = json_deep_copy(doc);
  require(again != NULL);
  require(x509_ca_normalize(again, CA_NAME, &err) == PROVD_OK);
  require(json_equal(doc, again));
  /* The same certificate keeps the old verification state. */
  x509_ca_keep_verification(again, body);
  require(json_is_boolean(json_object_get(again, "isVerified")));
  json_decref(again);
  fuzz_ca_verify(doc, body);
  json_decref(doc);
}

static void fuzz_explain(const uint8_t *data, size_t size)
{
  enum json_body_status why;
  json_t *body = json_body_read("application/json", (const char *)data, size,
                                SIZE_MAX, JSON_BODY_OPTIONAL, &why);
  require(!body || (why == JSON_BODY_OK && json_is_object(body)));
  if (why != JSON_BODY_OK)
    return;
  if (svc_explain_body_check(body) == 0) {
    const json_t *auth = json_object_get(body, "authorization");
    const json_t *cw = json_object_get(body, "callWebhook");
    require(!auth || json_is_string(auth));
    require(!cw || json_is_boolean(cw));
  }
  json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_explain(data, size);
  enum json_body_status why;
  json_t *body = json_body_read("application/json", (const char *)data, size,
                                SIZE_MAX, JSON_BODY_REQUIRED, &why);
  require((body != NULL) == (why == JSON_BODY_OK));
  if (!body)
    return 0;
  fuzz_hub(body);
  fuzz_ca(body);
  json_decref(body);
  return 0;
}
