/* provd-device send (send_cmd.h). */
#include "send_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void send_args_init(struct send_args *a)
{
  memset(a, 0, sizeof(*a));
  a->count = 1;
  a->interval_s = 1.0;
}

int send_args_number(struct send_args *a, const char *which,
                     const char *text)
{
  char *end = NULL;
  double v = strtod(text, &end);
  if (!text[0] || *end)
    return -1;
  if (strcmp(which, "count") == 0 && v >= 1 && v <= SEND_MAX_COUNT &&
      v == (long)v)
    a->count = (long)v;
  else if (strcmp(which, "interval") == 0 && v >= 0 && v <= 3600)
    a->interval_s = v;
  else if (strcmp(which, "hub-port") == 0 && v >= 1 && v <= 65535 &&
           v == (int)v)
    a->hub.port = (int)v;
  else
    return -1;
  return 0;
}

int run_send(const char *credentials_file, const struct send_args *a)
{
  if (!a->message) {
    fprintf(stderr, "provd-device: send needs --message JSON\n");
    return 2;
  }
  json_error_t jerr;
  json_t *doc = json_loads(a->message, JSON_DECODE_ANY, &jerr);
  if (!doc) {
    fprintf(stderr, "provd-device: --message is not JSON: %s\n", jerr.text);
    return 2;
  }
  json_decref(doc);
  struct provd_device_credentials cred;
  struct provd_err err;
  if (provd_device_credentials_load(credentials_file, &cred, &err) != 0) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    return strcmp(err.code, "NOT_FOUND") == 0 ? 2 : 1; /* register first */
  }
  const char **msgs = calloc((size_t)a->count, sizeof(*msgs));
  if (!msgs) {
    fprintf(stderr, "provd-device: out of memory\n");
    return 1;
  }
  for (long i = 0; i < a->count; i++)
    msgs[i] = a->message;
  size_t sent = 0;
  int rc = provd_device_send_file(credentials_file, a->tpm_tcti, &a->hub,
                                  msgs, (size_t)a->count, a->interval_s,
                                  &sent, &err);
  free(msgs);
  printf("sent %zu message(s) to hub=%s as device_id=%s\n", sent,
         cred.assigned_hub, cred.device_id);
  memset(&cred, 0, sizeof(cred)); /* the device key */
  if (rc != 0) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    return 1;
  }
  return 0;
}
