/* Which of DPS's five access policy permissions each service API request
 * needs (the table in docs/service-api.md), and who sees attestation
 * keys.  DPS's own rules: enrollments and groups need EnrollmentRead /
 * EnrollmentWrite, device registration states RegistrationStatusRead /
 * RegistrationStatusWrite, and the service's configuration (linked hubs,
 * CA certificates) ServiceConfig.  provd's extensions are placed by what
 * they reveal or change. */
#include <stdio.h>
#include <string.h>

#include "api/service_internal.h"

#define ALTERNATIVES_MAX 3

/* A request is allowed to a policy that holds every permission of at
 * least one alternative; no alternative at all: any signed caller. */
struct access_rule {
  unsigned alt[ALTERNATIVES_MAX];
};

#define ER PERM_ENROLLMENT_READ
#define EW PERM_ENROLLMENT_WRITE
#define RR PERM_REGISTRATION_READ
#define RW PERM_REGISTRATION_WRITE
#define SC PERM_SERVICE_CONFIG

static struct access_rule rule_for(enum svc_op op, enum provd_table table)
{
  int ca = table == PROVD_TABLE_CERTIFICATES;
  switch (op) {
  case SVC_OP_GET: /* a CA is read by whoever may name it in a group */
    return ca ? (struct access_rule){{ER, SC}} : (struct access_rule){{ER}};
  case SVC_OP_CA_LIST:
    return (struct access_rule){{ER, SC}};
  case SVC_OP_QUERY:
  case SVC_OP_ATTESTATION:
    return (struct access_rule){{ER}};
  case SVC_OP_PUT:
  case SVC_OP_DELETE:
    return (struct access_rule){{ca ? SC : EW}};
  case SVC_OP_BULK:
    return (struct access_rule){{EW}};
  case SVC_OP_REG_GET:
  case SVC_OP_REG_QUERY:
  case SVC_OP_REG_LIST:
    return (struct access_rule){{RR}};
  case SVC_OP_REG_DELETE:
    return (struct access_rule){{RW}};
  case SVC_OP_HUBS: /* the hubs enrollments name and devices went to */
    return (struct access_rule){{ER, RR, SC}};
  case SVC_OP_HUB_PUT:
  case SVC_OP_HUB_DELETE:
  case SVC_OP_CA_CODE:
  case SVC_OP_CA_VERIFY:
  case SVC_OP_EVENT_RETRY: /* re-delivers to a configured notifier */
    return (struct access_rule){{SC}};
  case SVC_OP_EVENTS: /* the journal tells of enrollments and devices */
  case SVC_OP_EVENT_GET:
  case SVC_OP_EVENTS_VERIFY:
    return (struct access_rule){{ER | RR, SC}};
  case SVC_OP_EXPLAIN: /* reads an enrollment and a registration state */
    return (struct access_rule){{ER | RR}};
  case SVC_OP_BACKUP: /* holds every key; also only the owner policy
                        (service_backup.c) */
    return (struct access_rule){{PERM_ALL}};
  case SVC_OP_POLICY: /* what the caller itself may do */
    break;
  }
  return (struct access_rule){{0}};
}

int svc_access_allowed(enum svc_op op, enum provd_table table,
                       unsigned held)
{
  struct access_rule r = rule_for(op, table);
  if (!r.alt[0])
    return 1;
  for (size_t i = 0; i < ALTERNATIVES_MAX && r.alt[i]; i++) {
    if ((held & r.alt[i]) == r.alt[i])
      return 1;
  }
  return 0;
}

char *svc_access_needs_text(enum svc_op op, enum provd_table table,
                            char *out, size_t cap)
{
  struct access_rule r = rule_for(op, table);
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < ALTERNATIVES_MAX && r.alt[i] && used < cap; i++) {
    char names[128];
    service_permissions_format(r.alt[i], names, sizeof(names));
    int several = strchr(names, ',') != NULL;
    int n = snprintf(out + used, cap - used, "%s%s%s%s", i ? " or " : "",
                     several ? "(" : "", names, several ? ")" : "");
    if (n < 0)
      break;
    used += (size_t)n;
  }
  if (!out[0])
    snprintf(out, cap, "none");
  return out;
}

int svc_access_shows_keys(unsigned held)
{
  /* A reader of a group key could derive every device key of the group
   * and register as any of them: more than reading.  Keys go to those
   * who may set them anyway. */
  return (held & PERM_ENROLLMENT_WRITE) != 0;
}
