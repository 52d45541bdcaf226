/* provctl ca ...: X.509 CAs registered with provd and their proof of
 * possession (service API /certificates, a provd extension; the DPS
 * "verified certificates" flow). */
#include "provctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 2048

static int ca_path(struct ctl *c, const char *suffix, char *out)
{
  if (ctl_path(out, PATH_CAP, "certificates", c->args[0], suffix, NULL) != 0)
    return ctl_usage_error(c, "CA name too long");
  return 0;
}

static void print_ca(json_t *ca)
{
  json_t *info = json_object_get(ca, "info");
  char validity[128];
  snprintf(validity, sizeof(validity), "%s .. %s",
           out_str(info, "notBeforeUtc", "?"),
           out_str(info, "notAfterUtc", "?"));
  out_field("name", out_str(ca, "name", "-"));
  out_field("subject", out_str(info, "subjectName", "-"));
  out_field("sha256 thumbprint", out_str(info, "sha256Thumbprint", "-"));
  out_field("valid", validity);
  out_field("verified",
            json_is_true(json_object_get(ca, "isVerified")) ? "yes" : "no");
  out_field("CRL", json_is_string(json_object_get(ca, "crl")) ? "yes" : "no");
  out_field("etag", out_str(ca, "etag", "-"));
}

/* The answer of a call on one CA, shown; returns the exit code. */
static int show_answer(struct ctl *c, int rc, struct ctl_reply *reply,
                       struct provd_err *err)
{
  if (rc == 0 && !json_is_object(reply->json)) {
    perr_set(err, "BAD_RESPONSE", "answer is not a JSON object");
    rc = -1;
  }
  if (rc == 0 && ctl_has(c, CO_JSON))
    out_json(reply->json);
  else if (rc == 0)
    print_ca(reply->json);
  ctl_reply_clear(reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(err);
}

int cmd_ca_add(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char path[PATH_CAP];
  int rc = ca_path(c, NULL, path);
  if (rc != 0)
    return rc;
  if (!ctl_value(c, CO_CERT))
    return ctl_usage_error(c, "ca add needs --cert FILE");
  char *cert = ctl_pki_file_text(c, "--cert", ctl_value(c, CO_CERT), &rc);
  if (!cert)
    return rc;
  json_t *body = json_pack("{s:s}", "certificate", cert);
  free(cert);
  if (ctl_value(c, CO_CRL)) {
    char *crl = ctl_pki_file_text(c, "--crl", ctl_value(c, CO_CRL), &rc);
    if (!crl) {
      json_decref(body);
      return rc;
    }
    json_object_set_new(body, "crl", json_string(crl));
    free(crl);
  }
  /* If-Match: * would require an existing CA; without --force a create
   * must not replace one: ask first. */
  memset(&reply, 0, sizeof(reply));
  if (!ctl_has(c, CO_FORCE) &&
      ctl_call(c, "GET", path, NULL, NULL, 0, &reply, &err) == 0) {
    ctl_reply_clear(&reply);
    json_decref(body);
    perr_set(&err, "EXISTS", "CA %s already exists; pass --force to replace "
             "it", c->args[0]);
    return ctl_fail(&err);
  }
  ctl_reply_clear(&reply);
  rc = ctl_call(c, "PUT", path, body, NULL, 0, &reply, &err);
  json_decref(body);
  return show_answer(c, rc, &reply, &err);
}

int cmd_ca_show(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char path[PATH_CAP];
  int rc = ca_path(c, NULL, path);
  if (rc != 0)
    return rc;
  rc = ctl_call(c, "GET", path, NULL, NULL, 0, &reply, &err);
  return show_answer(c, rc, &reply, &err);
}

int cmd_ca_list(struct ctl *c)
{
  static const char *const heads[] = {"NAME", "SUBJECT", "VERIFIED",
                                      "NOT AFTER"};
  struct provd_err err;
  struct ctl_reply reply;
  char path[PATH_CAP];
  if (ctl_path(path, sizeof(path), "certificates", NULL, NULL, NULL) != 0)
    return ctl_usage_error(c, "path too long");
  int rc = ctl_call(c, "GET", path, NULL, NULL, 0, &reply, &err);
  if (rc == 0 && ctl_has(c, CO_JSON)) {
    out_json(reply.json);
  } else if (rc == 0) {
    struct out_table *t = out_table_new(4, heads);
    size_t i;
    json_t *ca;
    json_array_foreach(reply.json, i, ca) {
      json_t *info = json_object_get(ca, "info");
      const char *row[] = {
          out_str(ca, "name", "-"), out_str(info, "subjectName", "-"),
          json_is_true(json_object_get(ca, "isVerified")) ? "yes" : "no",
          out_str(info, "notAfterUtc", "-")};
      out_table_row(t, row);
    }
    out_table_print_free(t);
  }
  ctl_reply_clear(&reply);
  return rc == 0 ? CTL_EXIT_OK : ctl_fail(&err);
}

int cmd_ca_remove(struct ctl *c)
{
  char path[PATH_CAP];
  int rc = ca_path(c, NULL, path);
  return rc != 0 ? rc : ctl_remove(c, path, "CA", "name", c->args[0]);
}

/* Without --proof: a fresh verification code.  With it: the proof. */
int cmd_ca_verify(struct ctl *c)
{
  struct provd_err err;
  struct ctl_reply reply;
  char path[PATH_CAP];
  const char *proof_file = ctl_value(c, CO_PROOF);
  int rc = ca_path(c, proof_file ? "verify" : "generateVerificationCode",
                   path);
  if (rc != 0)
    return rc;
  json_t *body = NULL;
  if (proof_file) {
    char *proof = ctl_pki_file_text(c, "--proof", proof_file, &rc);
    if (!proof)
      return rc;
    body = json_pack("{s:s}", "certificate", proof);
    free(proof);
  }
  rc = ctl_call(c, "POST", path, body, NULL, 0, &reply, &err);
  json_decref(body);
  if (rc == 0 && !proof_file && !ctl_has(c, CO_JSON)) {
    const char *code = out_str(reply.json, "verificationCode", NULL);
    if (code) {
      printf("%s\n", code);
      fprintf(stderr, "provctl: sign a certificate with subject CN=%s using "
              "the CA's key, then run: provctl ca verify %s --proof FILE\n",
              code, c->args[0]);
      ctl_reply_clear(&reply);
      return CTL_EXIT_OK;
    }
  }
  return show_answer(c, rc, &reply, &err);
}
