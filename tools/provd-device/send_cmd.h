/* provd-device send: telemetry to the assigned hub (provd/device.h). */
#ifndef TOOLS_PROVD_DEVICE_SEND_CMD_H
#define TOOLS_PROVD_DEVICE_SEND_CMD_H

#include "provd/device.h"

#define SEND_MAX_COUNT 100000

struct send_args {
  const char *message;   /* --message JSON */
  long count;            /* --count, default 1 */
  double interval_s;     /* --interval, default 1 */
  const char *tpm_tcti;  /* --tpm: a TPM device's TPM, if not the file's */
  struct provd_device_hub_opts hub;
};

void send_args_init(struct send_args *a);
/* --count, --interval or --hub-port from text; 0 or -1 (out of range). */
int send_args_number(struct send_args *a, const char *which,
                     const char *text);
/* Exit code: 0 sent, 1 refused or unreachable, 2 usage. */
int run_send(const char *credentials_file, const struct send_args *a);

#endif
