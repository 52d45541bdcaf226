#include "config/permissions.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* In the order the Azure portal and `az dps policy` list them. */
static const struct {
  unsigned bit;
  const char *name;
} NAMES[] = {
    {PERM_SERVICE_CONFIG, "ServiceConfig"},
    {PERM_ENROLLMENT_READ, "EnrollmentRead"},
    {PERM_ENROLLMENT_WRITE, "EnrollmentWrite"},
    {PERM_REGISTRATION_READ, "RegistrationStatusRead"},
    {PERM_REGISTRATION_WRITE, "RegistrationStatusWrite"},
};
#define N_NAMES (sizeof(NAMES) / sizeof(NAMES[0]))

unsigned service_permission_by_name(const char *name)
{
  for (size_t i = 0; name && i < N_NAMES; i++) {
    if (strcasecmp(NAMES[i].name, name) == 0)
      return NAMES[i].bit;
  }
  return 0;
}

unsigned service_access_by_name(const char *word)
{
  if (word && strcmp(word, "read") == 0)
    return PERM_ACCESS_READ;
  if (word && strcmp(word, "read-write") == 0)
    return PERM_ACCESS_READ_WRITE;
  return 0;
}

const char *service_permission_name(unsigned bit)
{
  for (size_t i = 0; i < N_NAMES; i++) {
    if (NAMES[i].bit == bit)
      return NAMES[i].name;
  }
  return NULL;
}

char *service_permissions_format(unsigned mask, char *out, size_t cap)
{
  size_t used = 0;
  if (cap == 0)
    return out;
  out[0] = '\0';
  for (size_t i = 0; i < N_NAMES; i++) {
    if (!(mask & NAMES[i].bit))
      continue;
    int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "",
                     NAMES[i].name);
    if (n < 0 || (size_t)n >= cap - used) {
      out[used] = '\0'; /* whole names only */
      break;
    }
    used += (size_t)n;
  }
  if (!used)
    snprintf(out, cap, "none");
  return out;
}
