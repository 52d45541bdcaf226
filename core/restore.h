/* `provd restore` (restore.c): the offline half of backup and restore. */
#ifndef CORE_RESTORE_H
#define CORE_RESTORE_H

#include <stdio.h>

/* argv[0] is "restore"; returns the process exit code. */
int restore_main(int argc, char **argv);
void restore_usage(FILE *out);

#endif
