/* provctl enrollment ... and group ...: individual enrollments and
 * enrollment groups share one implementation (dps-protocol.md 7). */
#include "provctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/b64.h"
#include "util/ids.h"

#define MAX_KEY_BYTES 256
#define MAX_EK_BYTES 1024 /* a marshalled TPM2B_PUBLIC */
#define PATH_CAP 2048
#define MAX_PKI_FILE (512 * 1024) /* a certificate or CRL file */

struct kind {
  const char *collection; /* URL collection */
  const char *id_field;   /* JSON id field */
  const char *noun;       /* in messages */
  const char *id_label;   /* in readable output */
};

static const struct kind individual = {
  "enrollments", "registrationId", "enrollment", "registration id"
};
static const struct kind group = {
  "enrollmentGroups", "enrollmentGroupId", "group", "group id"
};

static int path_for(const struct kind *k, const char *id, const char *suffix,
                    char *out, struct provd_err *err)
{
  if (ctl_path(out, PATH_CAP, k->collection, id, suffix, NULL) != 0) {
    perr_set(err, "BAD_INPUT", "%s id too long", k->noun);
    return -1;
  }
  return 0;
}

/* ---- reading keys ---------------------------------------------------- */

static int has_keys(json_t *record)
{
  json_t *sym = json_object_get(json_object_get(record, "attestation"),
                                "symmetricKey");
  return json_is_string(json_object_get(sym, "primaryKey"));
}

static int is_symmetric(json_t *record)
{
  const char *type = out_str(json_object_get(record, "attestation"), "type",
                             "");
  return strcmp(type, "symmetricKey") == 0;
}

/* The service may strip secrets from ordinary answers; the
 * attestationmechanism call is the one that hands them out. */
static int fill_keys(struct ctl *c, const struct kind *k, const char *id,
                     json_t *record, struct provd_err *err)
{
  char path[PATH_CAP];
  struct ctl_reply reply;
  if (!is_symmetric(record) || has_keys(record))
    return 0;
  if (path_for(k, id, "attestationmechanism", path, err) != 0 ||
      ctl_call(c, "POST", path, NULL, NULL, 0, &reply, err) != 0) {
    ctl_reply_clear(&reply);
    return -1;
  }
  if (json_is_object(reply.json))
    json_object_set(record, "attestation", reply.json);
  ctl_reply_clear(&reply);
  return 0;
}

/* ---- readable output ------------------------------------------------- */

static void print_keys(json_t *attestation)
{
  json_t *sym = json_object_get(attestation, "symmetricKey");
  if (!json_is_object(sym)) {
    if (strcmp(out_str(attestation, "type", ""), "symmetricKey") == 0)
      out_field("keys", "(not shown; use --show-keys)");
    return;
  }
  out_field("primary key", out_str(sym, "primaryKey", "-"));
  out_field("secondary key", out_str(sym, "secondaryKey", "-"));
}

/* X.509: which certificates the enrollment holds, by subject and
 * SHA-256 thumbprint (the service computed both). */
static void print_x509(json_t *attestation)
{
  static const char *const lists[] = {"clientCertificates",
                                      "signingCertificates"};
  static const char *const slots[] = {"primary", "secondary"};
  json_t *x509 = json_object_get(attestation, "x509");
  char label[48], text[512];
  for (size_t l = 0; l < 2; l++)
    for (size_t i = 0; i < 2; i++) {
      json_t *info = json_object_get(
          json_object_get(json_object_get(json_object_get(x509, lists[l]),
                                          slots[i]),
                          "certificate") ? json_object_get(
                                               json_object_get(x509,
                                                               lists[l]),
                                               slots[i])
                                         : NULL,
          "info");
      if (!json_is_object(info))
        continue;
      snprintf(label, sizeof(label), "%s %s", slots[i],
               l == 0 ? "certificate" : "signing CA");
      snprintf(text, sizeof(text), "%s (SHA-256 %s, until %s)",
               out_str(info, "subjectName", "?"),
               out_str(info, "sha256Thumbprint", "?"),
               out_str(info, "notAfterUtc", "?"));
      out_field(label, text);
    }
  if (json_is_string(json_object_get(x509, "crl")))
    out_field("CRL", "yes");
}

static void print_reprovision(json_t *policy)
{
  char text[128];
  if (!json_is_object(policy)) {
    out_field("reprovision policy", "(service default)");
    return;
  }
  snprintf(text, sizeof(text), "updateHubAssignment=%s migrateDeviceData=%s",
           json_is_false(json_object_get(policy, "updateHubAssignment"))
               ? "false" : "true",
           json_is_false(json_object_get(policy, "migrateDeviceData"))
               ? "false" : "true");
  out_field("reprovision policy", text);
}

static void print_registration_state(json_t *state)
{
  char text[768];
  if (!json_is_object(state))
    return;
  snprintf(text, sizeof(text), "%s (hub %s, device %s)",
           out_str(state, "status", "?"), out_str(state, "assignedHub", "-"),
           out_str(state, "deviceId", "-"));
  out_field("registration", text);
}

static void print_record(const struct kind *k, json_t *rec)
{
  json_t *att = json_object_get(rec, "attestation");
  char *hubs = out_join(json_object_get(rec, "iotHubs"), ", ",
                        "(all linked hubs)");
  out_field(k->id_label, out_str(rec, k->id_field, "-"));
  if (k == &individual)
    out_field("device id", out_str(rec, "deviceId", "(registration id)"));
  out_field("provisioning status",
            out_str(rec, "provisioningStatus", "enabled"));
  out_field("attestation", out_str(att, "type", "-"));
  print_keys(att);
  print_x509(att);
  out_field("allocation policy",
            out_str(rec, "allocationPolicy", "(service default)"));
  json_t *custom = json_object_get(rec, "customAllocationDefinition");
  if (json_is_object(custom))
    out_field("allocation webhook", out_str(custom, "webhookUrl", "-"));
  out_field("iot hubs", hubs ? hubs : "-");
  if (json_object_get(rec, "credentialPolicyName"))
    out_field("credential policy", out_str(rec, "credentialPolicyName", "-"));
  print_reprovision(json_object_get(rec, "reprovisionPolicy"));
  if (json_object_get(rec, "initialTwin"))
    out_field_json("initial twin", json_object_get(rec, "initialTwin"));
  out_field("etag", out_str(rec, "etag", "-"));
  out_field("created", out_str(rec, "createdDateTimeUtc", "-"));
  out_field("last updated", out_str(rec, "lastUpdatedDateTimeUtc", "-"));
  print_registration_state(json_object_get(rec, "registrationState"));
  free(hubs);
}

static void show_record(struct ctl *c, const struct kind *k, json_t *rec)
{
  if (ctl_has(c, CO_JSON))
    out_json(rec);
  else
    print_record(k, rec);
}

/* ---- building an enrollment from options ----------------------------- */

static int check_key(struct ctl *c, const char *flag, const char *b64)
{
  uint8_t raw[MAX_KEY_BYTES];
  size_t len = 0;
  if (b64_decode(b64, raw, sizeof(raw), &len) < 0 || len == 0)
    return ctl_usage_error(c, "%s is not a base64 key", flag);
  return 0;
}

/* attestation: {type: tpm, tpm: {endorsementKey}}. */
static int add_tpm_attestation(struct ctl *c, json_t *body)
{
  const char *ek = ctl_value(c, CO_ENDORSEMENT_KEY);
  uint8_t raw[MAX_EK_BYTES];
  size_t len = 0;
  if (ctl_value(c, CO_PRIMARY_KEY) || ctl_value(c, CO_SECONDARY_KEY))
    return ctl_usage_error(c, "--primary-key/--secondary-key do not go "
                           "with --attestation tpm");
  if (!ek)
    return ctl_usage_error(c, "--attestation tpm needs --endorsement-key "
                           "B64 (provd-device tpm-info prints it)");
  if (b64_decode(ek, raw, sizeof(raw), &len) < 0 || len == 0)
    return ctl_usage_error(c, "--endorsement-key is not base64 of at most "
                           "%d bytes", MAX_EK_BYTES);
  json_object_set_new(body, "attestation",
                      json_pack("{s:s,s:{s:s}}", "type", "tpm", "tpm",
                                "endorsementKey", ek));
  return 0;
}

char *ctl_pki_file_text(struct ctl *c, const char *flag, const char *path,
                        int *rc)
{
  FILE *f = fopen(path, "rb");
  unsigned char *buf = malloc(MAX_PKI_FILE + 1);
  size_t n = f && buf ? fread(buf, 1, MAX_PKI_FILE + 1, f) : 0;
  int bad = !f || !buf || ferror(f) || n == 0 || n > MAX_PKI_FILE;
  if (f)
    fclose(f);
  if (bad) {
    free(buf);
    *rc = ctl_usage_error(c, "%s %s: cannot read it, or it is empty or "
                          "larger than 512 KiB", flag, path);
    return NULL;
  }
  buf[n] = '\0';
  if (memchr(buf, '\0', n) == NULL && strstr((char *)buf, "-----BEGIN"))
    return (char *)buf;
  char *b64 = b64_encode(buf, n);
  free(buf);
  if (!b64)
    *rc = ctl_usage_error(c, "%s: out of memory", flag);
  return b64;
}

/* {"certificate": text of FILE} into obj[slot]. */
static int add_cert_slot(struct ctl *c, json_t *obj, const char *slot,
                         int flag_opt, const char *flag)
{
  const char *path = ctl_value(c, flag_opt);
  int rc = 0;
  if (!path)
    return 0;
  char *text = ctl_pki_file_text(c, flag, path, &rc);
  if (!text)
    return rc;
  json_object_set_new(obj, slot, json_pack("{s:s}", "certificate", text));
  free(text);
  return 0;
}

/* attestation.x509: the device certificate (individual), or the group's
 * CA (--ca-cert, or --ca-ref naming a registered one) and CRL. */
static int x509_attestation(struct ctl *c, int is_group, json_t *att)
{
  json_t *x509 = json_object(), *certs = json_object();
  const char *list = is_group ? "signingCertificates" : "clientCertificates";
  int rc = 0;
  json_object_set_new(att, "x509", x509);
  if (ctl_has(c, CO_PRIMARY_KEY) || ctl_has(c, CO_SECONDARY_KEY))
    rc = ctl_usage_error(c, "--primary-key/--secondary-key are for "
                         "symmetricKey attestation");
  else if (!is_group && !ctl_has(c, CO_CERT))
    rc = ctl_usage_error(c, "--attestation x509 needs --cert FILE");
  else if (is_group && !ctl_has(c, CO_CA_CERT) == !ctl_has(c, CO_CA_REF))
    rc = ctl_usage_error(c, "--attestation x509 needs --ca-cert FILE or "
                         "--ca-ref NAME");
  if (rc == 0)
    rc = add_cert_slot(c, certs, "primary", is_group ? CO_CA_CERT : CO_CERT,
                       is_group ? "--ca-cert" : "--cert");
  if (rc == 0)
    rc = add_cert_slot(c, certs, "secondary", CO_SECONDARY_CERT,
                       "--secondary-cert");
  if (json_object_size(certs) > 0)
    json_object_set(x509, list, certs);
  json_decref(certs);
  if (rc == 0 && ctl_value(c, CO_CA_REF))
    json_object_set_new(x509, "caReferences",
                        json_pack("{s:s}", "primary", ctl_value(c, CO_CA_REF)));
  if (rc == 0 && ctl_value(c, CO_CRL)) {
    char *crl = ctl_pki_file_text(c, "--crl", ctl_value(c, CO_CRL), &rc);
    if (crl)
      json_object_set_new(x509, "crl", json_string(crl));
    free(crl);
  }
  return rc;
}

static int add_attestation(struct ctl *c, const struct kind *k, json_t *body)
{
  const char *type = ctl_value(c, CO_ATTESTATION);
  if (type && strcmp(type, "x509") == 0) {
    json_t *att = json_pack("{s:s}", "type", "x509");
    json_object_set_new(body, "attestation", att);
    return x509_attestation(c, k == &group, att);
  }
  if (type && strcmp(type, "tpm") == 0)
    return k == &group ? ctl_usage_error(c, "enrollment groups cannot use "
                                         "tpm attestation")
                       : add_tpm_attestation(c, body);
  if (type && strcmp(type, "symmetricKey") != 0)
    return ctl_usage_error(c, "--attestation must be symmetricKey, x509 or "
                           "tpm, not \"%s\"", type);
  if (ctl_value(c, CO_ENDORSEMENT_KEY))
    return ctl_usage_error(c, "--endorsement-key needs --attestation tpm");
  if (ctl_has(c, CO_CERT) || ctl_has(c, CO_CA_CERT) || ctl_has(c, CO_CA_REF) ||
      ctl_has(c, CO_CRL) || ctl_has(c, CO_SECONDARY_CERT))
    return ctl_usage_error(c, "certificate options need --attestation x509");
  const char *pk = ctl_value(c, CO_PRIMARY_KEY);
  const char *sk = ctl_value(c, CO_SECONDARY_KEY);
  int rc = 0;
  if (!pk != !sk)
    return ctl_usage_error(c, "give both --primary-key and --secondary-key"
                           ", or neither (the server then generates them)");
  json_t *att = json_pack("{s:s}", "type", "symmetricKey");
  if (pk) {
    rc = check_key(c, "--primary-key", pk);
    if (rc == 0)
      rc = check_key(c, "--secondary-key", sk);
    if (rc != 0) {
      json_decref(att);
      return rc;
    }
    json_object_set_new(att, "symmetricKey", json_pack("{s:s,s:s}",
                        "primaryKey", pk, "secondaryKey", sk));
  }
  json_object_set_new(body, "attestation", att);
  return 0;
}

static int add_allocation(struct ctl *c, json_t *body)
{
  static const char *const policies[] = { "hashed", "static", "geoLatency",
                                          "custom" };
  const char *policy = ctl_value(c, CO_ALLOCATION);
  const char *webhook = ctl_value(c, CO_WEBHOOK_URL);
  int known = 0;
  if (!policy) {
    if (webhook)
      return ctl_usage_error(c, "--webhook-url needs --allocation custom");
    return 0;
  }
  for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
    known |= strcmp(policy, policies[i]) == 0;
  if (!known)
    return ctl_usage_error(c, "--allocation must be hashed, static, "
                           "geoLatency or custom, not \"%s\"", policy);
  json_object_set_new(body, "allocationPolicy", json_string(policy));
  if (webhook && strcmp(policy, "custom") != 0)
    return ctl_usage_error(c, "--webhook-url needs --allocation custom");
  if (webhook) {
    const char *api = ctl_value(c, CO_WEBHOOK_API);
    json_object_set_new(body, "customAllocationDefinition",
                        json_pack("{s:s,s:s}", "webhookUrl", webhook,
                                  "apiVersion", api ? api : "2021-10-01"));
  }
  return 0;
}

static int add_twin(struct ctl *c, json_t *body)
{
  json_error_t jerr;
  const char *text = ctl_value(c, CO_INITIAL_TWIN);
  if (!text)
    return 0;
  json_t *twin = json_loads(text, 0, &jerr);
  if (!json_is_object(twin)) {
    json_decref(twin);
    return ctl_usage_error(c, "--initial-twin must be a JSON object like "
                           "'{\"tags\":{},\"properties\":{\"desired\":{}}}'"
                           "%s%s", twin ? "" : ": ", twin ? "" : jerr.text);
  }
  json_object_set_new(body, "initialTwin", twin);
  return 0;
}

/* The IndividualEnrollment / EnrollmentGroup to PUT; NULL and *rc set on
 * a usage error. */
static json_t *build_record(struct ctl *c, const struct kind *k,
                            const char *id, int *rc)
{
  int no_re = ctl_has(c, CO_NO_REPROVISION);
  json_t *hubs = json_array();
  json_t *body = json_pack("{s:s}", k->id_field, id);
  if (!body || !hubs) {
    json_decref(body);
    json_decref(hubs);
    *rc = ctl_usage_error(c, "the id is not valid UTF-8");
    return NULL;
  }
  if (ctl_value(c, CO_DEVICE_ID))
    json_object_set_new(body, "deviceId",
                        json_string(ctl_value(c, CO_DEVICE_ID)));
  *rc = add_attestation(c, k, body);
  json_object_set_new(body, "provisioningStatus",
                      json_string(ctl_has(c, CO_DISABLED) ? "disabled"
                                                          : "enabled"));
  for (size_t i = 0; i < c->opts.n_hubs; i++)
    json_array_append_new(hubs, json_string(c->opts.hubs[i]));
  if (c->opts.n_hubs > 0)
    json_object_set(body, "iotHubs", hubs);
  json_decref(hubs);
  if (*rc == 0)
    *rc = add_allocation(c, body);
  if (*rc == 0)
    *rc = add_twin(c, body);
  if (ctl_value(c, CO_CREDENTIAL_POLICY))
    json_object_set_new(body, "credentialPolicyName",
                        json_string(ctl_value(c, CO_CREDENTIAL_POLICY)));
  json_object_set_new(body, "reprovisionPolicy", json_pack("{s:b,s:b}",
                      "updateHubAssignment", !no_re,
                      "migrateDeviceData", !no_re));
  if (*rc != 0) {
    json_decref(body);
    return NULL;
  }
  return body;
}

/* ---- commands -------------------------------------------------------- */

/* GET of one record; *found says whether it exists.  -1 on other errors. */
static int get_record(struct ctl *c, const struct kind *k, const char *id,
                      struct ctl_reply *reply, int *found,
                      struct provd_err *err)
{
  char path[PATH_CAP];
  *found = 0;
  memset(reply, 0, sizeof(*reply));
  if (path_for(k, id, NULL, path, err) != 0)
    return -1;
  if (ctl_call(c, "GET", path, NULL, NULL, 0, reply, err) == 0) {
    *found = json_is_object(reply->json);
    if (!*found)
      perr_set(err, "BAD_RESPONSE", "%s answer is not a JSON object",
               k->noun);
    return *found ? 0 : -1;
  }
  return reply->status == 404 ? 0 : -1;
}

static const char *record_etag(const struct ctl_reply *reply)
{
  const char *e = out_str(reply->json, "etag", NULL);
  return e ? e : reply->etag[0] ? reply->etag : NULL;
}

/* PUT body; with an etag the write only happens if nothing changed. */
static int put_record(struct ctl *c, const struct kind *k, const char *id,
                      json_t *body, const char *etag, struct ctl_reply *reply,
                      struct provd_err *err)
{
  char path[PATH_CAP];
  char if_match[300];
  const char *hdrs[1] = { if_match };
  memset(reply, 0, sizeof(*reply));
  if (path_for(k, id, NULL, path, err) != 0)
    return -1;
  if (etag)
    snprintf(if_match, sizeof(if_match), "If-Match: %s", etag);
  if (ctl_call(c, "PUT", path, body, hdrs, etag ? 1 : 0, reply, err) != 0) {
    if (reply->status == 412)
      snprintf(err->msg + strlen(err->msg), sizeof(err->msg) -
               strlen(err->msg), " — the %s changed meanwhile; run the "
               "command again", k->noun);
    return -1;
  }
  if (!json_is_object(reply->json)) {
    perr_set(err, "BAD_RESPONSE", "PUT answer is not a JSON object");
    return -1;
  }
  return 0;
}

/* REGID, --registration-id, or for a TPM the id the SDKs derive from the
 * EK; NULL after a usage error (*rc set). */
static const char *add_id(struct ctl *c, char derived[IDS_TPM_REGID_LEN + 1],
                          int *rc)
{
  const char *arg = c->n_args > 0 ? c->args[0] : NULL;
  const char *opt = ctl_value(c, CO_REGISTRATION_ID);
  const char *ek = ctl_value(c, CO_ENDORSEMENT_KEY);
  uint8_t raw[MAX_EK_BYTES];
  size_t len = 0;
  *rc = 0;
  if (arg && opt && strcmp(arg, opt) != 0)
    *rc = ctl_usage_error(c, "REGID and --registration-id differ");
  else if (arg || opt)
    return arg ? arg : opt;
  else if (!ek || b64_decode(ek, raw, sizeof(raw), &len) < 0 || len == 0)
    *rc = ctl_usage_error(c, "enrollment add needs REGID (or a TPM's "
                          "--endorsement-key to derive it from)");
  if (*rc != 0)
    return NULL;
  ids_tpm_registration_id(raw, len, derived);
  return derived;
}

static int do_add(struct ctl *c, const struct kind *k)
{
  struct provd_err err;
  struct ctl_reply existing, reply;
  int rc, found;
  char derived[IDS_TPM_REGID_LEN + 1];
  const char *id = add_id(c, derived, &rc);
  if (!id)
    return rc;
  json_t *body = build_record(c, k, id, &rc);
  if (!body)
    return rc;
  if (get_record(c, k, id, &existing, &found, &err) != 0) {
    json_decref(body);
    ctl_reply_clear(&existing);
    return ctl_fail(&err);
  }
  if (found && !ctl_has(c, CO_FORCE)) {
    perr_set(&err, "EXISTS", "%s %s already exists; pass --force to "
             "replace it", k->noun, id);
    json_decref(body);
    ctl_reply_clear(&existing);
    return ctl_fail(&err);
  }
  rc = put_record(c, k, id, body, found ? record_etag(&existing) : NULL,
                  &reply, &err);
  json_decref(body);
  ctl_reply_clear(&existing);
  /* The record exists now: a failed key fetch is worth a warning, not a
   * failure exit that would suggest nothing was created. */
  if (rc == 0 && fill_keys(c, k, id, reply.json, &err) != 0)
    fprintf(stderr, "provctl: warning: %s %s was stored, but its keys "
            "could not be fetched: %s\n", k->noun, id, err.msg);
  if (rc == 0)
    show_record(c, k, reply.json);
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

static int do_show(struct ctl *c, const struct kind *k)
{
  struct provd_err err;
  struct ctl_reply reply;
  int found;
  const char *id = c->args[0];
  int rc = get_record(c, k, id, &reply, &found, &err);
  if (rc == 0 && !found) {
    perr_set(&err, "NOT_FOUND", "%s %s not found", k->noun, id);
    rc = -1;
  }
  if (rc == 0 && ctl_has(c, CO_SHOW_KEYS))
    rc = fill_keys(c, k, id, reply.json, &err);
  else if (rc == 0)
    out_mask_keys(json_object_get(reply.json, "attestation"));
  if (rc == 0)
    show_record(c, k, reply.json);
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

static void print_list(const struct kind *k, json_t *items)
{
  const char *ind_heads[] = { "REGID", "DEVICE ID", "STATUS", "ATTESTATION",
                              "HUBS" };
  const char *grp_heads[] = { "GROUP ID", "STATUS", "ATTESTATION", "HUBS" };
  int ind = k == &individual;
  struct out_table *t = ind ? out_table_new(5, ind_heads)
                            : out_table_new(4, grp_heads);
  size_t i;
  json_t *rec;
  json_array_foreach(items, i, rec) {
    char *hubs = out_join(json_object_get(rec, "iotHubs"), ",", "*");
    const char *id = out_str(rec, k->id_field, "-");
    const char *status = out_str(rec, "provisioningStatus", "enabled");
    const char *att = out_str(json_object_get(rec, "attestation"), "type",
                              "-");
    const char *ind_row[] = { id, out_str(rec, "deviceId", "-"), status, att,
                              hubs };
    const char *grp_row[] = { id, status, att, hubs };
    out_table_row(t, ind ? ind_row : grp_row);
    free(hubs);
  }
  out_table_print_free(t);
}

static int do_list(struct ctl *c, const struct kind *k)
{
  struct provd_err err;
  char path[PATH_CAP];
  json_t *items = NULL;
  json_t *query = json_pack("{s:s}", "query", "*");
  int rc = ctl_path(path, sizeof(path), k->collection, NULL, "query", NULL);
  if (rc == 0)
    rc = ctl_collect(c, "POST", path, query, c->opts.limit, &items, &err);
  json_decref(query);
  if (rc != 0)
    return ctl_fail(&err);
  size_t i;
  json_t *rec;
  json_array_foreach(items, i, rec)
    out_mask_keys(json_object_get(rec, "attestation"));
  if (ctl_has(c, CO_JSON))
    out_json(items);
  else
    print_list(k, items);
  json_decref(items);
  return CTL_EXIT_OK;
}

static int do_remove(struct ctl *c, const struct kind *k)
{
  struct provd_err err;
  char path[PATH_CAP];
  const char *id = c->args[0];
  if (path_for(k, id, NULL, path, &err) != 0)
    return ctl_fail(&err);
  return ctl_remove(c, path, k->noun, k->id_field, id);
}

/* Read, flip provisioningStatus, write back under If-Match so a
 * concurrent change is not overwritten.  Keys are fetched first when the
 * read omitted them, so the write cannot make the server replace them. */
static int do_set_status(struct ctl *c, const struct kind *k,
                         const char *status)
{
  struct provd_err err;
  struct ctl_reply current, updated;
  int found;
  const char *id = c->args[0];
  memset(&updated, 0, sizeof(updated));
  int rc = get_record(c, k, id, &current, &found, &err);
  if (rc == 0 && !found) {
    perr_set(&err, "NOT_FOUND", "%s %s not found", k->noun, id);
    rc = -1;
  }
  if (rc == 0)
    rc = fill_keys(c, k, id, current.json, &err);
  if (rc == 0) {
    json_object_set_new(current.json, "provisioningStatus",
                        json_string(status));
    rc = put_record(c, k, id, current.json, record_etag(&current), &updated,
                    &err);
  }
  if (rc == 0) {
    out_mask_keys(json_object_get(updated.json, "attestation"));
    if (ctl_has(c, CO_JSON))
      out_json(updated.json);
    else
      printf("%s %s: %s\n", k->noun, id,
             out_str(updated.json, "provisioningStatus", status));
  }
  ctl_reply_clear(&current);
  ctl_reply_clear(&updated);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

int cmd_enrollment_add(struct ctl *c) { return do_add(c, &individual); }
int cmd_enrollment_show(struct ctl *c) { return do_show(c, &individual); }
int cmd_enrollment_list(struct ctl *c) { return do_list(c, &individual); }
int cmd_enrollment_remove(struct ctl *c)
{
  return do_remove(c, &individual);
}
int cmd_enrollment_enable(struct ctl *c)
{
  return do_set_status(c, &individual, "enabled");
}
int cmd_enrollment_disable(struct ctl *c)
{
  return do_set_status(c, &individual, "disabled");
}
int cmd_group_add(struct ctl *c) { return do_add(c, &group); }
int cmd_group_show(struct ctl *c) { return do_show(c, &group); }
int cmd_group_list(struct ctl *c) { return do_list(c, &group); }
int cmd_group_remove(struct ctl *c) { return do_remove(c, &group); }
int cmd_group_enable(struct ctl *c)
{
  return do_set_status(c, &group, "enabled");
}
int cmd_group_disable(struct ctl *c)
{
  return do_set_status(c, &group, "disabled");
}
