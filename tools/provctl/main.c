/* provctl: admin CLI over the provd service API (DPS enrollment REST plus
 * provd extensions).  Exit codes: 0 ok, 1 the server said no / not found
 * / network error, 2 usage error.  With --json, stdout carries exactly
 * one JSON document on success; errors always go to stderr. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provctl.h"
#include "util/backup_file.h"

#define OPT_BASE 1000

struct ctl_command {
  const char *noun;
  const char *verb;      /* NULL: the noun alone is the command */
  size_t min_args;
  size_t max_args;
  uint64_t options;      /* CO_BITs beyond the global ones */
  int (*run)(struct ctl *c);
  const char *synopsis;  /* after "provctl " */
  const char *help;      /* what it does, then its options */
};

#define ADD_OPTS (CO_BIT(CO_PRIMARY_KEY) | CO_BIT(CO_SECONDARY_KEY)          \
                  | CO_BIT(CO_HUB) | CO_BIT(CO_ALLOCATION)                   \
                  | CO_BIT(CO_WEBHOOK_URL) | CO_BIT(CO_WEBHOOK_API)          \
                  | CO_BIT(CO_DISABLED) | CO_BIT(CO_INITIAL_TWIN)            \
                  | CO_BIT(CO_NO_REPROVISION) | CO_BIT(CO_FORCE)              \
                  | CO_BIT(CO_ATTESTATION) | CO_BIT(CO_CREDENTIAL_POLICY))

#define ADD_HELP_COMMON                                                     \
  "  --primary-key B64        primary symmetric key (base64)\n"            \
  "  --secondary-key B64      secondary key; give both keys or neither\n"  \
  "                           (then the server generates them)\n"         \
  "  --hub HOSTNAME           candidate IoT hub host name; repeat for\n"   \
  "                           several (default: all linked hubs)\n"        \
  "  --allocation POLICY      hashed, static, geoLatency or custom\n"      \
  "                           (default: the service's default policy)\n"   \
  "  --webhook-url URL        custom allocation webhook (with\n"           \
  "                           --allocation custom)\n"                      \
  "  --webhook-api-version V  its apiVersion (default 2021-10-01)\n"       \
  "  --disabled               create it with provisioningStatus disabled\n"\
  "  --initial-twin JSON      initial twin, e.g. '{\"tags\":{\"site\":"    \
  "\"a\"}}'\n"                                                             \
  "  --no-reprovision         reprovisionPolicy: updateHubAssignment and\n"\
  "                           migrateDeviceData false (default true)\n"    \
  "  --credential-policy NAME\n"                                         \
  "                           the certificate issuer (provd.yaml\n"      \
  "                           certificate_issuers) that signs CSRs the\n" \
  "                           devices send (credentialPolicyName)\n"      \
  "  --force                  replace an existing one (else refused)\n"    \
  "Prints the stored record, keys included (the device needs them).\n"

#define HUB_OPTS (CO_BIT(CO_HOSTNAME) | CO_BIT(CO_WEIGHT) | \
                  CO_BIT(CO_REGION) | CO_BIT(CO_APPLY_POLICY))
#define HUB_OPTS_HELP                                                     \
  "  --hostname HOST          what devices get as assignedHub\n"         \
  "  --weight N               0..1000 (default 1); 0: drained\n"         \
  "  --region REGION          the hub's region (informational; see\n"    \
  "                           docs/allocation.md)\n"                      \
  "  --apply-allocation-policy true|false\n"                             \
  "                           false: never gets new devices\n"

static const struct ctl_command commands[] = {
  { "enrollment", "add", 0, 1, ADD_OPTS | CO_BIT(CO_DEVICE_ID) |
    CO_BIT(CO_CERT) | CO_BIT(CO_SECONDARY_CERT) |
    CO_BIT(CO_ENDORSEMENT_KEY) | CO_BIT(CO_REGISTRATION_ID),
    cmd_enrollment_add,
    "enrollment add REGID [--device-id ID] [--primary-key B64 "
    "--secondary-key B64]\n       [--attestation x509 --cert FILE "
    "[--secondary-cert FILE]]\n       [--hub HOSTNAME]... "
    "[--allocation POLICY] [--webhook-url URL]\n       [--disabled] "
    "[--initial-twin JSON] [--no-reprovision]\n       "
    "[--credential-policy NAME] [--force]\n"
    "       enrollment add --attestation tpm --endorsement-key B64 "
    "[--registration-id ID] [...]",
    "Creates an individual enrollment (PUT /enrollments/REGID): symmetric "
    "key\n(default), X.509 or TPM.\n\n"
    "  --device-id ID           IoT Hub device id (default: REGID)\n"
    "  --attestation TYPE       symmetricKey (default), x509 or tpm\n"
    "  --cert FILE              x509: the device certificate (PEM or DER);"
    "\n                           its subject CN must be REGID\n"
    "  --secondary-cert FILE    x509: a second accepted certificate\n"
    "  --endorsement-key B64    tpm: the TPM's EK, base64 TPM2B_PUBLIC as\n"
    "                           the device sends it (provd-device tpm-info)\n"
    "  --registration-id ID     same as REGID; for TPM both may be left\n"
    "                           out: the id is derived from the EK as the\n"
    "                           Azure SDKs derive it\n"
    ADD_HELP_COMMON },
  { "enrollment", "show", 1, 1, CO_BIT(CO_SHOW_KEYS), cmd_enrollment_show,
    "enrollment show REGID [--show-keys]",
    "Shows one individual enrollment.\n\n"
    "  --show-keys              print the symmetric keys (else ****)\n" },
  { "enrollment", "list", 0, 0, CO_BIT(CO_LIMIT), cmd_enrollment_list,
    "enrollment list [--limit N]",
    "Lists individual enrollments (POST /enrollments/query, paged) as\n"
    "REGID, DEVICE ID, STATUS, ATTESTATION, HUBS (* = all linked hubs).\n"
    "Keys are masked.\n\n"
    "  --limit N                stop after N enrollments\n" },
  { "enrollment", "remove", 1, 1, CO_BIT(CO_ETAG), cmd_enrollment_remove,
    "enrollment remove REGID [--etag ETAG]",
    "Deletes an individual enrollment.\n\n"
    "  --etag ETAG              only if its etag still is ETAG (If-Match)\n"
  },
  { "enrollment", "enable", 1, 1, 0, cmd_enrollment_enable,
    "enrollment enable REGID",
    "Sets provisioningStatus to enabled (read, modify, write with\n"
    "If-Match).\n" },
  { "enrollment", "import", 1, 1, 0, cmd_enrollment_import,
    "enrollment import FILE.csv",
    "Creates symmetric-key enrollments from a CSV file (the bulk\n"
    "operation, 10 rows a request) and prints the created ids and keys as\n"
    "CSV (registrationId,primaryKey,secondaryKey,deviceId); with --json,\n"
    "every row's result.  Columns: registrationId, primaryKey,\n"
    "secondaryKey, deviceId, iotHubs (separated by ';'), tags (k=v;k=v,\n"
    "into initialTwin.tags); a header row naming them is optional, empty\n"
    "keys are generated.  A progress line and every refused row with its\n"
    "reason go to stderr; exit 1 when a row was refused.\n" },
  { "enrollment", "disable", 1, 1, 0, cmd_enrollment_disable,
    "enrollment disable REGID",
    "Sets provisioningStatus to disabled: the device can no longer\n"
    "register (read, modify, write with If-Match).\n" },
  { "group", "add", 1, 1, ADD_OPTS | CO_BIT(CO_CA_CERT) |
    CO_BIT(CO_SECONDARY_CERT) | CO_BIT(CO_CA_REF) | CO_BIT(CO_CRL),
    cmd_group_add,
    "group add GROUPID [--primary-key B64 --secondary-key B64]\n"
    "       [--attestation x509 (--ca-cert FILE [--secondary-cert FILE] | "
    "--ca-ref NAME)\n        [--crl FILE]]\n"
    "       [--hub HOSTNAME]... [--allocation POLICY] [--webhook-url URL]\n"
    "       [--disabled] [--initial-twin JSON] [--no-reprovision]\n"
    "       [--credential-policy NAME] [--force]",
    "Creates an enrollment group (PUT /enrollmentGroups/GROUPID).  With\n"
    "symmetric keys (default) devices use keys derived from the group key\n"
    "(see derive-key); with x509 devices present a certificate chain that\n"
    "reaches the group's CA.\n\n"
    "  --attestation TYPE       symmetricKey (default) or x509\n"
    "  --ca-cert FILE           x509: the signing CA (root or intermediate)"
    "\n  --secondary-cert FILE    x509: a second signing CA\n"
    "  --ca-ref NAME            x509: a CA registered with provd "
    "(caReferences)\n"
    "  --crl FILE               x509: a CRL (PEM or DER) checked on every\n"
    "                           registration; add again with --force to "
    "replace it\n"
    ADD_HELP_COMMON },
  { "group", "show", 1, 1, CO_BIT(CO_SHOW_KEYS), cmd_group_show,
    "group show GROUPID [--show-keys]",
    "Shows one enrollment group.\n\n"
    "  --show-keys              print the group keys (else ****)\n" },
  { "group", "list", 0, 0, CO_BIT(CO_LIMIT), cmd_group_list,
    "group list [--limit N]",
    "Lists enrollment groups (POST /enrollmentGroups/query, paged) as\n"
    "GROUP ID, STATUS, ATTESTATION, HUBS.  Keys are masked.\n\n"
    "  --limit N                stop after N groups\n" },
  { "group", "remove", 1, 1, CO_BIT(CO_ETAG), cmd_group_remove,
    "group remove GROUPID [--etag ETAG]",
    "Deletes an enrollment group.\n\n"
    "  --etag ETAG              only if its etag still is ETAG (If-Match)\n"
  },
  { "group", "enable", 1, 1, 0, cmd_group_enable, "group enable GROUPID",
    "Sets the group's provisioningStatus to enabled.\n" },
  { "group", "disable", 1, 1, 0, cmd_group_disable, "group disable GROUPID",
    "Sets the group's provisioningStatus to disabled.\n" },
  { "ca", "add", 1, 1, CO_BIT(CO_CERT) | CO_BIT(CO_CRL) | CO_BIT(CO_FORCE),
    cmd_ca_add, "ca add NAME --cert FILE [--crl FILE] [--force]",
    "Registers an X.509 CA with provd (PUT /certificates/NAME), unverified."
    "\nEnrollment groups may name it (group add --ca-ref NAME) once\n"
    "`ca verify` proved that you hold its private key.\n\n"
    "  --cert FILE              the CA certificate (PEM or DER)\n"
    "  --crl FILE               its CRL, checked on every registration\n"
    "  --force                  replace an existing CA (the same certificate"
    "\n                           stays verified; a new CRL applies at once)"
    "\n" },
  { "ca", "verify", 1, 1, CO_BIT(CO_PROOF), cmd_ca_verify,
    "ca verify NAME [--proof FILE]",
    "Proof of possession.  Without --proof: prints a one-time verification"
    "\ncode.  Sign a certificate whose subject CN is that code with the CA's"
    "\nkey, then pass it with --proof: the CA becomes verified.\n\n"
    "  --proof FILE             the signed certificate (PEM or DER)\n" },
  { "ca", "show", 1, 1, 0, cmd_ca_show, "ca show NAME",
    "Shows a registered CA: subject, thumbprint, validity, verified.\n" },
  { "ca", "list", 0, 0, 0, cmd_ca_list, "ca list",
    "Lists the registered CAs.\n" },
  { "ca", "remove", 1, 1, CO_BIT(CO_ETAG), cmd_ca_remove,
    "ca remove NAME [--etag ETAG]", "Deletes a registered CA.\n" },
  { "registration", "show", 1, 1, 0, cmd_registration_show,
    "registration show REGID",
    "Shows the registration record of a device (GET /registrations/REGID):"
    "\nstatus, assigned hub, device id, error code.\n" },
  { "registration", "list", 0, 0,
    CO_BIT(CO_HUB) | CO_BIT(CO_GROUP) | CO_BIT(CO_LIMIT),
    cmd_registration_list,
    "registration list [--hub NAME_OR_HOSTNAME] [--group GROUPID] "
    "[--limit N]",
    "Lists registration records (provd extension GET /registrations, paged"
    ")\nas REGID, DEVICE ID, STATUS, HUB, LAST UPDATED.\n\n"
    "  --hub NAME_OR_HOSTNAME   only devices assigned to this hub\n"
    "  --group GROUPID          only devices of this enrollment group\n"
    "  --limit N                stop after N records\n" },
  { "registration", "remove", 1, 1, CO_BIT(CO_ETAG),
    cmd_registration_remove, "registration remove REGID [--etag ETAG]",
    "Deletes a registration record (the enrollment stays).\n\n"
    "  --etag ETAG              only if its etag still is ETAG (If-Match)\n"
  },
  { "hub", "list", 0, 0, 0, cmd_hub_list, "hub list",
    "Lists the linked hubs (provd extension GET /hubs) as NAME, HOSTNAME,\n"
    "WEIGHT, REGION, STATE (active, drained, no-policy, removed), DEVICES.\n"
  },
  { "hub", "add", 1, 1, HUB_OPTS, cmd_hub_add,
    "hub add NAME --hostname HOST [--weight N] [--region REGION]\n"
    "       [--apply-allocation-policy true|false]",
    "Links a hub at run time (provd extension PUT /hubs/NAME); devices\n"
    "registering from now on may get it.\n\n" HUB_OPTS_HELP },
  { "hub", "set", 1, 1, HUB_OPTS, cmd_hub_set,
    "hub set NAME [--hostname HOST] [--weight N] [--region REGION]\n"
    "       [--apply-allocation-policy true|false]",
    "Changes the given fields of a linked hub; the others stay.  A removed\n"
    "hub is linked again.\n\n" HUB_OPTS_HELP },
  { "hub", "drain", 1, 1, 0, cmd_hub_drain, "hub drain NAME",
    "Sets the hub's weight to 0: it gets no new devices; devices already\n"
    "on it stay (reprovisioning may move them).\n" },
  { "hub", "remove", 1, 1, 0, cmd_hub_remove, "hub remove NAME",
    "Unlinks a hub: it gets no new devices and enrollments naming it no\n"
    "longer match it.  Its devices' registration records stay and show\n"
    "assignedHubRemoved: true; `hub set` links it again.\n" },
  { "explain", NULL, 1, 1,
    CO_BIT(CO_PAYLOAD) | CO_BIT(CO_SCOPE) | CO_BIT(CO_SYMMETRIC_KEY) |
    CO_BIT(CO_GROUP_KEY) | CO_BIT(CO_CALL_WEBHOOK),
    cmd_explain,
    "explain REGID [--payload JSON] [--call-webhook] [--scope SCOPE "
    "(--symmetric-key B64 | --group-key B64)]",
    "Dry-runs a registration (provd extension POST /explain/REGID) and\n"
    "prints the outcome, the reason, the hub it would get and the\n"
    "enrollment that matched.  Nothing is stored.\n\n"
    "  --payload JSON           device payload, as a device would send it\n"
    "  --call-webhook           call a custom allocation webhook too (by\n"
    "                           default the dry run does not)\n"
    "  --scope SCOPE            ID scope; needed with a key\n"
    "  --symmetric-key B64      sign a device token with this key ...\n"
    "  --group-key B64          ... or with the key derived from this group"
    "\n                           key, so the signature is checked too\n" },
  { "derive-key", NULL, 1, 2, CO_BIT(CO_KEY) | CO_BIT(CO_SECONDARY),
    cmd_derive_key, "derive-key GROUP REGID | derive-key --key B64 REGID",
    "Prints the device key of REGID in a symmetric-key group:\n"
    "base64(HMAC-SHA256(group key, REGID)).  With GROUP the group key is\n"
    "fetched from the server; with --key no server is needed.\n\n"
    "  --key B64                the group key\n"
    "  --secondary              derive from the group's secondary key\n" },
  { "events", "list", 0, 0, CO_BIT(CO_AFTER) | CO_BIT(CO_LIMIT),
    cmd_events_list, "events list [--after SEQ] [--limit N]",
    "Lists journal events (provd extension GET /events) as SEQ, TIME,\n"
    "TYPE, SUBJECT; --json adds each event's id, body and hashes.\n\n"
    "  --after SEQ              only events after sequence number SEQ\n"
    "  --limit N                at most N events\n" },
  { "events", "show", 1, 1, 0, cmd_events_show, "events show SEQ",
    "Shows one event (GET /events/SEQ) and what each notifier instance\n"
    "did with it: delivered, pending, filtered, dead (with the reason),\n"
    "retry or queued.\n" },
  { "events", "retry", 1, 1, 0, cmd_events_retry, "events retry SEQ",
    "Hands the dead letters of event SEQ back to their notifiers (POST\n"
    "/events/SEQ/retry); they try again within a second.\n" },
  { "events", "verify", 0, 0, 0, cmd_events_verify, "events verify",
    "Walks the journal's hash chain (GET /events/verify).  Exit 0 when\n"
    "every event matches its hash and links to the one before; exit 1\n"
    "naming the first broken link otherwise.\n" },
  { "backup", NULL, 1, 1,
    CO_BIT(CO_PASSPHRASE_FILE) | CO_BIT(CO_KEYS_ONLY) | CO_BIT(CO_FORCE),
    cmd_backup, "backup FILE [--passphrase-file FILE] [--keys-only] "
    "[--force]",
    "Saves the running provd (provd extension GET /backup, owner policy\n"
    "only) to FILE, mode 0600: a consistent copy of the store taken while\n"
    "devices go on registering, and the data dir's CA, server certificate\n"
    "and keys, and service connection string.  `provd restore FILE\n"
    "--data-dir DIR` brings it back as the same server.  With a passphrase\n"
    "the file is encrypted here (AES-256-GCM, scrypt-derived key), else\n"
    "it is plain: keep it like the keys it holds.  A store saved by its\n"
    "own tools (PostgreSQL: pg_dump) is refused; --keys-only then saves\n"
    "the rest.\n\n"
    "  --passphrase-file FILE   encrypt with the first line of FILE (else\n"
    "                           with $" BACKUP_PASSPHRASE_ENV " when set)\n"
    "  --keys-only              leave the store out\n"
    "  --force                  replace FILE when it exists\n" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_help[] =
  "Global options (before or after the command):\n"
  "  --url URL                provd service URL (default $PROVD_URL, else\n"
  "                           " CTL_DEFAULT_URL ")\n"
  "  --data-dir DIR           provd data dir (default " CTL_DEFAULT_DATA_DIR
  ")\n"
  "  --connection-string S    service connection string (default\n"
  "                           $PROVD_CONNECTION_STRING, else the file\n"
  "                           DIR/service-connection-string)\n"
  "  --ca FILE                CA to trust (default DIR/tls/ca.pem when it\n"
  "                           exists, else the system store)\n"
  "  --json                   print one JSON document instead of text\n"
  "  --help                   help (also after a command)\n"
  "  --version                print the version\n"
  "Exit codes: 0 ok, 1 refused / not found / network error, 2 usage.\n";

static const struct option long_opts[] = {
  { "url", required_argument, NULL, OPT_BASE + CO_URL },
  { "data-dir", required_argument, NULL, OPT_BASE + CO_DATA_DIR },
  { "connection-string", required_argument, NULL, OPT_BASE + CO_CONN_STR },
  { "ca", required_argument, NULL, OPT_BASE + CO_CA },
  { "json", no_argument, NULL, OPT_BASE + CO_JSON },
  { "help", no_argument, NULL, OPT_BASE + CO_HELP },
  { "version", no_argument, NULL, OPT_BASE + CO_VERSION },
  { "device-id", required_argument, NULL, OPT_BASE + CO_DEVICE_ID },
  { "primary-key", required_argument, NULL, OPT_BASE + CO_PRIMARY_KEY },
  { "secondary-key", required_argument, NULL, OPT_BASE + CO_SECONDARY_KEY },
  { "hub", required_argument, NULL, OPT_BASE + CO_HUB },
  { "allocation", required_argument, NULL, OPT_BASE + CO_ALLOCATION },
  { "webhook-url", required_argument, NULL, OPT_BASE + CO_WEBHOOK_URL },
  { "webhook-api-version", required_argument, NULL,
    OPT_BASE + CO_WEBHOOK_API },
  { "disabled", no_argument, NULL, OPT_BASE + CO_DISABLED },
  { "initial-twin", required_argument, NULL, OPT_BASE + CO_INITIAL_TWIN },
  { "no-reprovision", no_argument, NULL, OPT_BASE + CO_NO_REPROVISION },
  { "force", no_argument, NULL, OPT_BASE + CO_FORCE },
  { "show-keys", no_argument, NULL, OPT_BASE + CO_SHOW_KEYS },
  { "limit", required_argument, NULL, OPT_BASE + CO_LIMIT },
  { "hostname", required_argument, NULL, OPT_BASE + CO_HOSTNAME },
  { "weight", required_argument, NULL, OPT_BASE + CO_WEIGHT },
  { "region", required_argument, NULL, OPT_BASE + CO_REGION },
  { "apply-allocation-policy", required_argument, NULL,
    OPT_BASE + CO_APPLY_POLICY },
  { "etag", required_argument, NULL, OPT_BASE + CO_ETAG },
  { "group", required_argument, NULL, OPT_BASE + CO_GROUP },
  { "key", required_argument, NULL, OPT_BASE + CO_KEY },
  { "secondary", no_argument, NULL, OPT_BASE + CO_SECONDARY },
  { "after", required_argument, NULL, OPT_BASE + CO_AFTER },
  { "payload", required_argument, NULL, OPT_BASE + CO_PAYLOAD },
  { "call-webhook", no_argument, NULL, OPT_BASE + CO_CALL_WEBHOOK },
  { "scope", required_argument, NULL, OPT_BASE + CO_SCOPE },
  { "symmetric-key", required_argument, NULL, OPT_BASE + CO_SYMMETRIC_KEY },
  { "group-key", required_argument, NULL, OPT_BASE + CO_GROUP_KEY },
  { "attestation", required_argument, NULL, OPT_BASE + CO_ATTESTATION },
  { "cert", required_argument, NULL, OPT_BASE + CO_CERT },
  { "secondary-cert", required_argument, NULL, OPT_BASE + CO_SECONDARY_CERT },
  { "ca-cert", required_argument, NULL, OPT_BASE + CO_CA_CERT },
  { "ca-ref", required_argument, NULL, OPT_BASE + CO_CA_REF },
  { "crl", required_argument, NULL, OPT_BASE + CO_CRL },
  { "proof", required_argument, NULL, OPT_BASE + CO_PROOF },
  { "credential-policy", required_argument, NULL,
    OPT_BASE + CO_CREDENTIAL_POLICY },
  { "endorsement-key", required_argument, NULL,
    OPT_BASE + CO_ENDORSEMENT_KEY },
  { "registration-id", required_argument, NULL,
    OPT_BASE + CO_REGISTRATION_ID },
  { "passphrase-file", required_argument, NULL,
    OPT_BASE + CO_PASSPHRASE_FILE },
  { "keys-only", no_argument, NULL, OPT_BASE + CO_KEYS_ONLY },
  { NULL, 0, NULL, 0 }
};

static const char *opt_name(enum ctl_opt o)
{
  for (size_t i = 0; long_opts[i].name; i++) {
    if (long_opts[i].val == OPT_BASE + (int)o)
      return long_opts[i].name;
  }
  return "?";
}

/* ---- reporting ------------------------------------------------------- */

/* Bad input the user typed (a URL, a connection string, an id) is a
 * usage error; everything else is the server's or the network's answer. */
int ctl_fail(const struct provd_err *err)
{
  static const char *const usage_codes[] = { "BAD_URL",
                                             "BAD_CONNECTION_STRING",
                                             "BAD_INPUT" };
  fprintf(stderr, "provctl: %s\n", err->msg[0] ? err->msg : err->code);
  for (size_t i = 0; i < sizeof(usage_codes) / sizeof(usage_codes[0]); i++) {
    if (strcmp(err->code, usage_codes[i]) == 0)
      return CTL_EXIT_USAGE;
  }
  return CTL_EXIT_FAIL;
}

static void usage_hint(const struct ctl_command *cmd)
{
  if (cmd)
    fprintf(stderr, "Try 'provctl %s%s%s --help'.\n", cmd->noun,
            cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
  else
    fprintf(stderr, "Try 'provctl --help'.\n");
}

static int vusage(const struct ctl_command *cmd, const char *fmt, va_list ap)
{
  fprintf(stderr, "provctl: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  usage_hint(cmd);
  return CTL_EXIT_USAGE;
}

int ctl_usage_error(const struct ctl *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int rc = vusage(c ? c->cmd : NULL, fmt, ap);
  va_end(ap);
  return rc;
}

static int usage(const struct ctl_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage(const struct ctl_command *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int rc = vusage(cmd, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- help ------------------------------------------------------------ */

static void print_general_help(void)
{
  printf("usage: provctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n\n"
         "Administers provd through its service API.\n\nCommands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++)
    printf("  %s\n", commands[i].synopsis);
  printf("\n%s\n'provctl COMMAND --help' explains one command.\n",
         global_help);
}

static void print_noun_help(const char *noun)
{
  printf("usage:\n");
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(commands[i].noun, noun) == 0)
      printf("  provctl %s\n", commands[i].synopsis);
  }
  printf("\n'provctl %s SUBCOMMAND --help' explains one of them.\n", noun);
}

static void print_command_help(const struct ctl_command *cmd)
{
  printf("usage: provctl %s\n\n%s\n%s", cmd->synopsis, cmd->help,
         global_help);
}

/* ---- parsing --------------------------------------------------------- */

static int parse_number(const char *text, long long lo, long long hi,
                        long long *out)
{
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (!text[0] || *end || errno || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int take_option(struct ctl_opts *o, enum ctl_opt opt,
                       const char *value)
{
  long long n;
  o->given |= CO_BIT(opt);
  o->value[opt] = value;
  switch (opt) {
  case CO_HUB:
    if (o->n_hubs >= CTL_MAX_HUBS)
      return usage(NULL, "at most %d --hub options", CTL_MAX_HUBS);
    o->hubs[o->n_hubs++] = value;
    break;
  case CO_LIMIT:
    if (parse_number(value, 1, CTL_MAX_LIMIT, &n) != 0)
      return usage(NULL, "--limit wants a number 1..%ld, not \"%s\"",
                   CTL_MAX_LIMIT, value);
    o->limit = (long)n;
    break;
  case CO_WEIGHT:
    if (parse_number(value, 0, 1000, &n) != 0)
      return usage(NULL, "--weight wants a number 0..1000, not \"%s\"",
                   value);
    o->weight = (int)n;
    break;
  case CO_APPLY_POLICY:
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
      return usage(NULL, "--apply-allocation-policy wants true or false, "
                         "not \"%s\"", value);
    o->apply_policy = strcmp(value, "true") == 0;
    break;
  case CO_AFTER:
    if (parse_number(value, 0, INT64_MAX, &n) != 0)
      return usage(NULL, "--after wants a sequence number >= 0, not \"%s\"",
                   value);
    o->after = (int64_t)n;
    break;
  default:
    break;
  }
  return 0;
}

static int parse_options(int argc, char **argv, struct ctl_opts *o)
{
  int ch;
  memset(o, 0, sizeof(*o));
  o->after = -1;
  opterr = 0;
  while ((ch = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
    if (ch == ':')
      return usage(NULL, "%s needs a value", argv[optind - 1]);
    if (ch < OPT_BASE || ch >= OPT_BASE + CO_COUNT_)
      return usage(NULL, "unknown option %s", argv[optind - 1]);
    int rc = take_option(o, (enum ctl_opt)(ch - OPT_BASE), optarg);
    if (rc != 0)
      return rc;
  }
  for (int i = optind; i < argc; i++) {
    if (o->n_args >= CTL_MAX_ARGS + 2)
      return usage(NULL, "too many arguments");
    o->args[o->n_args++] = argv[i];
  }
  return 0;
}

static int noun_known(const char *noun, int *has_verbs)
{
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(commands[i].noun, noun) == 0) {
      *has_verbs = commands[i].verb != NULL;
      return 1;
    }
  }
  return 0;
}

static const struct ctl_command *find_command(const char *noun,
                                              const char *verb)
{
  for (size_t i = 0; i < N_COMMANDS; i++) {
    const struct ctl_command *c = &commands[i];
    if (strcmp(c->noun, noun) == 0 &&
        (!c->verb || (verb && strcmp(c->verb, verb) == 0)))
      return c;
  }
  return NULL;
}

/* Finds the command named by the leading positionals and returns 0 with
 * *cmd set and *words = how many positionals named it; or returns a usage
 * exit code.  With --help, *cmd may stay NULL: *words = 0 asks for the
 * general help, 1 for the help of a noun's subcommands. */
static int resolve(struct ctl *c, const struct ctl_command **cmd,
                   size_t *words)
{
  const struct ctl_opts *o = &c->opts;
  int help = ctl_has(c, CO_HELP);
  int has_verbs = 0;
  *cmd = NULL;
  *words = 0;
  if (o->n_args == 0) {
    if (help)
      return 0;
    return usage(NULL, "missing command");
  }
  const char *noun = o->args[0];
  if (!noun_known(noun, &has_verbs))
    return usage(NULL, "unknown command \"%s\"", noun);
  if (has_verbs && o->n_args < 2) {
    if (help) {
      *words = 1; /* help for every subcommand of the noun */
      return 0;
    }
    return usage(NULL, "\"%s\" needs a subcommand; see 'provctl %s "
                 "--help'", noun, noun);
  }
  *cmd = find_command(noun, has_verbs ? o->args[1] : NULL);
  if (!*cmd)
    return usage(NULL, "unknown command \"%s %s\"; see 'provctl %s --help'",
                 noun, o->args[1], noun);
  *words = has_verbs ? 2 : 1;
  return 0;
}

/* Checks options and argument count against the command. */
static int validate(struct ctl *c)
{
  const struct ctl_command *cmd = c->cmd;
  uint64_t extra = c->opts.given & ~(CO_GLOBAL | cmd->options);
  for (int o = 0; extra && o < CO_COUNT_; o++) {
    if (extra & CO_BIT(o))
      return usage(cmd, "--%s is not an option of '%s%s%s'",
                   opt_name((enum ctl_opt)o), cmd->noun,
                   cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
  }
  if (c->n_args < cmd->min_args)
    return usage(cmd, "missing argument; usage: provctl %s", cmd->synopsis);
  if (c->n_args > cmd->max_args)
    return usage(cmd, "unexpected argument \"%s\"",
                 c->args[cmd->max_args]);
  if (cmd->run == cmd_registration_list && c->opts.n_hubs > 1)
    return usage(cmd, "give --hub once");
  return 0;
}

int main(int argc, char **argv)
{
  struct ctl ctl;
  const struct ctl_command *cmd;
  size_t words;
  memset(&ctl, 0, sizeof(ctl));
  int rc = parse_options(argc, argv, &ctl.opts);
  if (rc != 0)
    return rc;
  if (ctl_has(&ctl, CO_VERSION) && !ctl_has(&ctl, CO_HELP)) {
    printf("provctl %s\n", PROVD_VERSION);
    return CTL_EXIT_OK;
  }
  /* "provctl help [COMMAND]" is the same as "provctl [COMMAND] --help". */
  if (ctl.opts.n_args > 0 && strcmp(ctl.opts.args[0], "help") == 0) {
    memmove(ctl.opts.args, ctl.opts.args + 1,
            (ctl.opts.n_args - 1) * sizeof(ctl.opts.args[0]));
    ctl.opts.n_args--;
    ctl.opts.given |= CO_BIT(CO_HELP);
  }
  rc = resolve(&ctl, &cmd, &words);
  if (rc != 0)
    return rc;
  if (ctl_has(&ctl, CO_HELP)) {
    if (cmd)
      print_command_help(cmd);
    else if (words == 1)
      print_noun_help(ctl.opts.args[0]);
    else
      print_general_help();
    return CTL_EXIT_OK;
  }
  ctl.cmd = cmd;
  ctl.args = ctl.opts.args + words;
  ctl.n_args = ctl.opts.n_args - words;
  rc = validate(&ctl);
  if (rc == 0)
    rc = cmd->run(&ctl);
  ctl_disconnect(&ctl);
  return rc;
}
