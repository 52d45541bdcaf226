#include "engine/ca_refs.h"

#include <stdlib.h>
#include <string.h>

#include "provd/storage.h"

/* attestation.x509.caReferences.<which> of a group, or NULL. */
static const char *ca_reference(const json_t *group, const char *which)
{
  const json_t *x509 = json_object_get(json_object_get(group, "attestation"),
                                       "x509");
  return json_string_value(
      json_object_get(json_object_get(x509, "caReferences"), which));
}

/* The CA's certificate into signing[which], its CRL appended to crls. */
static void add_verified_ca(struct store_session *s, const char *name,
                            const char *which, json_t *signing, json_t *crls)
{
  struct store_rec ca = {0};
  struct provd_err err;
  perr_clear(&err);
  if (store_get(s, PROVD_TABLE_CERTIFICATES, name, &ca, &err) != PROVD_OK)
    return;
  const char *cert = json_string_value(json_object_get(ca.body, "certificate"));
  const char *crl = json_string_value(json_object_get(ca.body, "crl"));
  if (cert && json_is_true(json_object_get(ca.body, "isVerified"))) {
    json_object_set_new(signing, which,
                        json_pack("{s:s}", "certificate", cert));
    if (crl)
      json_array_append_new(crls, json_string(crl));
  }
  store_rec_clear(&ca);
}

/* PEM CRLs, one after the other: the x509 plugin reads every block. */
static json_t *joined(const json_t *crls)
{
  size_t len = 1, i;
  const json_t *v;
  json_array_foreach(crls, i, v) len += strlen(json_string_value(v));
  char *text = calloc(1, len);
  if (!text)
    return NULL;
  json_array_foreach(crls, i, v) strcat(text, json_string_value(v));
  json_t *out = json_string(text);
  free(text);
  return out;
}

json_t *ca_refs_resolve(struct store_session *s, const json_t *group)
{
  static const char *const which[] = {"primary", "secondary"};
  if (!ca_reference(group, "primary") &&
      !ca_reference(group, "secondary"))
    return NULL;
  json_t *copy = json_deep_copy(group);
  json_t *x509 = json_object_get(json_object_get(copy, "attestation"), "x509");
  json_t *signing = json_object(), *crls = json_array();
  for (size_t i = 0; i < 2; i++) {
    const char *name = ca_reference(group, which[i]);
    if (name)
      add_verified_ca(s, name, which[i], signing, crls);
  }
  json_object_set_new(x509, "signingCertificates", signing);
  if (json_array_size(crls) > 0)
    json_object_set_new(x509, "crl", joined(crls));
  json_decref(crls);
  return copy;
}
