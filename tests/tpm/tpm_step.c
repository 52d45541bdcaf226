/* One device-side TPM step at a time, for scripted tests that need to act
 * between the two PUTs of the DPS TPM flow (restart the server, replay):
 *   tpm_step TCTI activate BLOB_B64      import an authenticationKey
 *   tpm_step TCTI token SCOPE REGID SE   print the TPM-signed SAS token
 * Exit 0 on success, 1 with the reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provd_device_tpm.h"

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: tpm_step TCTI activate BLOB_B64 | "
                    "token SCOPE REGID SE\n");
    return 2;
  }
  struct device_tpm *t = NULL;
  struct provd_err err;
  perr_clear(&err);
  int rc = device_tpm_open(argv[1], &t, &err);
  if (rc == 0 && strcmp(argv[2], "activate") == 0) {
    rc = device_tpm_activate(t, argv[3], &err);
  } else if (rc == 0 && strcmp(argv[2], "token") == 0 && argc == 6) {
    char *tok = device_tpm_token(t, argv[3], argv[4],
                                 strtoll(argv[5], NULL, 10), &err);
    if (tok)
      printf("%s\n", tok);
    rc = tok ? 0 : -1;
    free(tok);
  } else if (rc == 0) {
    perr_set(&err, "BAD_INPUT", "unknown step %s", argv[2]);
    rc = -1;
  }
  if (rc != 0)
    fprintf(stderr, "tpm_step: %s: %s\n", err.code, err.msg);
  device_tpm_close(t);
  return rc == 0 ? 0 : 1;
}
