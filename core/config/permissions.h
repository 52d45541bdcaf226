/* DPS's shared access policy permissions (the five "rights" of an Azure
 * DPS access policy), as the service API enforces them and the config
 * names them.  docs/service-api.md has the table of what each request
 * needs. */
#ifndef CORE_CONFIG_PERMISSIONS_H
#define CORE_CONFIG_PERMISSIONS_H

#include <stddef.h>

enum service_permission {
  PERM_SERVICE_CONFIG = 1u << 0,        /* ServiceConfig */
  PERM_ENROLLMENT_READ = 1u << 1,       /* EnrollmentRead */
  PERM_ENROLLMENT_WRITE = 1u << 2,      /* EnrollmentWrite */
  PERM_REGISTRATION_READ = 1u << 3,     /* RegistrationStatusRead */
  PERM_REGISTRATION_WRITE = 1u << 4,    /* RegistrationStatusWrite */
  PERM_ALL = (1u << 5) - 1
};

/* The older `access:` words, kept as names for sets of permissions:
 * read = EnrollmentRead + RegistrationStatusRead, read-write = all. */
#define PERM_ACCESS_READ (PERM_ENROLLMENT_READ | PERM_REGISTRATION_READ)
#define PERM_ACCESS_READ_WRITE PERM_ALL

/* The permission a DPS name stands for (exact spelling, ignoring ASCII
 * case: "EnrollmentRead"), or 0. */
unsigned service_permission_by_name(const char *name);
/* The set an `access:` word stands for ("read", "read-write"), or 0. */
unsigned service_access_by_name(const char *word);
/* The DPS name of one permission bit, or NULL. */
const char *service_permission_name(unsigned bit);
/* The names in mask, DPS order, joined by ", " into out (as many whole
 * names as fit in cap); "none" for an empty set.  Returns out. */
char *service_permissions_format(unsigned mask, char *out, size_t cap);

#endif
