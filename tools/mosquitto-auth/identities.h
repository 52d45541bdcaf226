/* The identities file the hub-mosquitto connector writes (docs/hubs.md):
 *   # provd hub identities v1
 *   DEVICE_ID \t REGISTRATION_ID \t HUB_HOSTNAME \t KEY_B64|- \t THUMBPRINT|-
 * loaded into a table sorted by device id. */
#ifndef TOOLS_MOSQUITTO_AUTH_IDENTITIES_H
#define TOOLS_MOSQUITTO_AUTH_IDENTITIES_H

#include <stddef.h>

#define IDENT_FIELD_MAX 256

struct ident {
  char device_id[IDENT_FIELD_MAX];
  char hub[IDENT_FIELD_MAX];
  char key_b64[IDENT_FIELD_MAX];    /* "" when none */
  char thumbprint[IDENT_FIELD_MAX]; /* hex, "" when none */
};

struct ident_table {
  struct ident *items; /* sorted by device_id */
  size_t n;
};

/* Reads path into *out (caller frees with ident_table_free).  A missing
 * file is an empty table.  0, or -1 with errno set. */
int ident_table_load(const char *path, struct ident_table *out);
void ident_table_free(struct ident_table *t);
const struct ident *ident_find(const struct ident_table *t,
                               const char *device_id);
/* 1 when a and b authenticate the same way. */
int ident_same(const struct ident *a, const struct ident *b);

#endif
