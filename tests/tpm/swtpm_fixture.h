/* A private swtpm for one test: its own state directory and free ports,
 * stopped by PID.  swtpm serves one client at a time, so tests that run
 * in parallel each need their own. */
#ifndef TESTS_SWTPM_FIXTURE_H
#define TESTS_SWTPM_FIXTURE_H

#include <sys/types.h>

struct swtpm {
  pid_t pid;
  int port;          /* TPM command port (TCTI "swtpm:...,port=PORT") */
  char dir[256];     /* state directory, removed on stop */
  char tcti[128];    /* "swtpm:host=127.0.0.1,port=PORT" */
};

/* 0 when swtpm answers on its port, -1 otherwise (message on stderr). */
int swtpm_start(struct swtpm *t);
void swtpm_stop(struct swtpm *t);

#endif
