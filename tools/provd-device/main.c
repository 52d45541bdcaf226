/* provd-device: a device-side DPS client on top of libprovd-device.
 * Exit codes: 0 assigned, 1 refused / failed / network, 2 usage. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provd_device.h"
#include "provd_device_tpm.h"
#include "portal.h"
#include "send_cmd.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

static const char usage_text[] =
  "usage: provd-device register --scope SCOPE --registration-id ID\n"
  "                             (--symmetric-key B64 | --group-key B64 |\n"
  "                              --cert FILE --key FILE | --tpm TCTI)\n"
  "                             [--url URL] [--ca FILE] [--payload JSON]\n"
  "                             [--api-version V] [--timeout SECONDS]"
  " [--json]\n"
  "                             [--csr-key FILE [--cert-out FILE]]\n"
  "                             [--credentials FILE [--force]]\n"
  "       provd-device send --credentials FILE --message JSON\n"
  "                         [--count N] [--interval SECONDS]\n"
  "                         [--hub-host HOST] [--hub-port PORT]"
  " [--hub-ca FILE]\n"
  "                         [--tpm TCTI]\n"
  "       provd-device tpm-info --tpm TCTI [--json]\n"
  "       provd-device portal --listen HOST:PORT [--credentials FILE]"
  " [--url URL] [--ca FILE]\n"
  "       provd-device --help | --version\n"
  "\n"
  "Registers a device with provd (or any DPS-compatible service) over\n"
  "HTTPS: PUT /{scope}/registrations/{id}/register, then polls the\n"
  "operation until the service decides.\n"
  "\n"
  "  --scope SCOPE            ID scope (provd prints it at start-up)\n"
  "  --registration-id ID     the device's registration id\n"
  "  --symmetric-key B64      individual enrollment key (base64)\n"
  "  --group-key B64          enrollment group key; the device key is\n"
  "                           derived as HMAC-SHA256(group key, ID)\n"
  "  --tpm TCTI               TPM 2.0 attestation with this TPM, a\n"
  "                           tpm2-tss TCTI such as device:/dev/tpmrm0 or\n"
  "                           swtpm:host=127.0.0.1,port=2321; without\n"
  "                           --registration-id the id is derived from\n"
  "                           the EK as the Azure SDKs do\n"
  "  --url URL                service URL (default $PROVD_URL, else\n"
  "                           " PROVD_DEVICE_DEFAULT_URL "); mqtts://HOST:PORT\n"
  "                           registers over DPS MQTT instead (not --tpm)\n"
  "  --ca FILE                PEM CA file to trust (default: system"
  " store;\n"
  "                           for a local provd use var/tls/ca.pem)\n"
  "  --payload JSON           JSON sent as \"payload\" (custom"
  " allocation)\n"
  "  --api-version V          api-version query value (default "
  PROVD_DEVICE_DEFAULT_API_VERSION ")\n"
  "  --timeout SECONDS        give up after this long, polls included\n"
  "                           (default 30)\n"
  "  --json                   print the registrationState as JSON\n"
  "  --cert FILE              X.509: PEM certificate, leaf first, then any\n"
  "                           intermediates the service needs; the leaf's\n"
  "                           subject CN is the registration id\n"
  "  --key FILE               X.509: the certificate's PEM private key\n"
  "  --csr-key FILE           ask for a certificate: send a CSR signed\n"
  "                           with this PEM key (a new ECDSA P-384 key\n"
  "                           is written there, mode 0600, when FILE\n"
  "                           does not exist); api-version defaults to\n"
  "                           " PROVD_DEVICE_CSR_API_VERSION "\n"
  "  --cert-out FILE          where the issued chain is stored as PEM,\n"
  "                           leaf first (default ID.pem); also printed\n"
  "  --credentials FILE       register: keep the assignment (hub, device\n"
  "                           id, device key -- for --tpm the key as the\n"
  "                           TPM imported it, usable only by that TPM)\n"
  "                           there, mode 0600, and skip\n"
  "                           registering when FILE already holds this\n"
  "                           device (--force registers again);\n"
  "                           send: the file to connect with\n"
  "\n"
  "send connects to the assigned hub over MQTT with TLS as the device\n"
  "(IoT Hub style: SAS token from the device key, signed inside the TPM\n"
  "for a TPM device, or the X.509 certificate) and publishes --message\n"
  "to devices/{deviceId}/messages/events/, --count times (default 1),\n"
  "--interval seconds apart (default 1), each acknowledged by the hub.\n"
  "  --hub-host HOST          connect here instead of the assigned hub's\n"
  "                           host name (which still names the hub)\n"
  "  --hub-port PORT          default 8883\n"
  "  --hub-ca FILE            PEM CA file to trust for the hub\n"
  "  --tpm TCTI               a TPM device: sign with this TPM instead of\n"
  "                           the TCTI the credentials file names (the\n"
  "                           TPM must be the one that registered)\n"
  "\n"
  "tpm-info prints the TPM's endorsement key (base64 TPM2B_PUBLIC, what\n"
  "an enrollment holds) and the registration id derived from it,\n"
  "creating the EK (0x81010001) and SRK (0x81000001) when absent.\n"
  "\n"
  "Prints \"assigned hub=HUB device_id=ID\" and exits 0 when assigned;\n"
  "exits 1 when the service refuses (failed, disabled, HTTP error) or\n"
  "cannot be reached, 2 on a usage error.\n";

enum opt_id {
  OPT_SCOPE = 256, OPT_REGID, OPT_SYMKEY, OPT_GROUPKEY, OPT_URL, OPT_CA,
  OPT_PAYLOAD, OPT_API, OPT_TIMEOUT, OPT_JSON, OPT_CERT, OPT_KEY, OPT_TPM,
  OPT_HELP, OPT_VERSION, OPT_CSR_KEY, OPT_CERT_OUT, OPT_CREDENTIALS,
  OPT_FORCE, OPT_MESSAGE, OPT_COUNT, OPT_INTERVAL, OPT_HUB_HOST, OPT_HUB_PORT,
  OPT_HUB_CA
};

static const struct option long_opts[] = {
  { "scope", required_argument, NULL, OPT_SCOPE },
  { "registration-id", required_argument, NULL, OPT_REGID },
  { "symmetric-key", required_argument, NULL, OPT_SYMKEY },
  { "group-key", required_argument, NULL, OPT_GROUPKEY },
  { "url", required_argument, NULL, OPT_URL },
  { "ca", required_argument, NULL, OPT_CA },
  { "payload", required_argument, NULL, OPT_PAYLOAD },
  { "api-version", required_argument, NULL, OPT_API },
  { "timeout", required_argument, NULL, OPT_TIMEOUT },
  { "json", no_argument, NULL, OPT_JSON },
  { "cert", required_argument, NULL, OPT_CERT },
  { "key", required_argument, NULL, OPT_KEY },
  { "tpm", required_argument, NULL, OPT_TPM },
  { "csr-key", required_argument, NULL, OPT_CSR_KEY },
  { "cert-out", required_argument, NULL, OPT_CERT_OUT },
  { "credentials", required_argument, NULL, OPT_CREDENTIALS },
  { "force", no_argument, NULL, OPT_FORCE },
  { "message", required_argument, NULL, OPT_MESSAGE },
  { "count", required_argument, NULL, OPT_COUNT },
  { "interval", required_argument, NULL, OPT_INTERVAL },
  { "hub-host", required_argument, NULL, OPT_HUB_HOST },
  { "hub-port", required_argument, NULL, OPT_HUB_PORT },
  { "hub-ca", required_argument, NULL, OPT_HUB_CA },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 }
};

struct cli {
  struct provd_device_opts reg;
  const char *csr_key;     /* --csr-key: ask for a certificate */
  const char *cert_out;    /* --cert-out */
  const char *credentials; /* --credentials */
  int force;
  struct send_args send;   /* send_cmd.h */
  int json;
  int help;
  int version;
};

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "provd-device: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'provd-device --help'.\n");
  return EXIT_USAGE;
}

static int parse_timeout(const char *text, int *out)
{
  char *end = NULL;
  long v = strtol(text, &end, 10);
  if (!text[0] || *end || v < 1 || v > 86400)
    return -1;
  *out = (int)v;
  return 0;
}

/* Fills cli from argv; returns 0 or an exit code. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
    switch (c) {
    case OPT_SCOPE: cli->reg.id_scope = optarg; break;
    case OPT_REGID: cli->reg.registration_id = optarg; break;
    case OPT_SYMKEY: cli->reg.symmetric_key = optarg; break;
    case OPT_GROUPKEY: cli->reg.group_key = optarg; break;
    case OPT_URL: cli->reg.url = optarg; break;
    case OPT_CA: cli->reg.ca_file = optarg; break;
    case OPT_PAYLOAD: cli->reg.payload_json = optarg; break;
    case OPT_API: cli->reg.api_version = optarg; break;
    case OPT_JSON: cli->json = 1; break;
    case OPT_HELP: cli->help = 1; break;
    case OPT_VERSION: cli->version = 1; break;
    case OPT_CERT: cli->reg.cert_file = optarg; break;
    case OPT_KEY: cli->reg.key_file = optarg; break;
    case OPT_CSR_KEY: cli->csr_key = optarg; break;
    case OPT_CERT_OUT: cli->cert_out = optarg; break;
    case OPT_TPM: cli->reg.tpm_tcti = optarg; break;
    case OPT_CREDENTIALS: cli->credentials = optarg; break;
    case OPT_FORCE: cli->force = 1; break;
    case OPT_MESSAGE: cli->send.message = optarg; break;
    case OPT_HUB_HOST: cli->send.hub.host = optarg; break;
    case OPT_HUB_CA: cli->send.hub.ca_file = optarg; break;
    case OPT_COUNT:
    case OPT_INTERVAL:
    case OPT_HUB_PORT:
      if (send_args_number(&cli->send, c == OPT_COUNT ? "count"
                           : c == OPT_INTERVAL ? "interval" : "hub-port",
                           optarg) != 0)
        return usage_error("--%s: \"%s\" is out of range",
                           c == OPT_COUNT ? "count"
                           : c == OPT_INTERVAL ? "interval" : "hub-port",
                           optarg);
      break;
    case OPT_TIMEOUT:
      if (parse_timeout(optarg, &cli->reg.timeout_s) != 0)
        return usage_error("--timeout wants 1..86400 seconds, not \"%s\"",
                           optarg);
      break;
    case ':':
      return usage_error("%s needs a value", argv[optind - 1]);
    default:
      return usage_error("unknown option %s", argv[optind - 1]);
    }
  }
  return 0;
}

static int check_register_args(const struct cli *cli)
{
  if (!cli->reg.id_scope)
    return usage_error("%s", "register needs --scope SCOPE");
  if (!cli->reg.registration_id && (!cli->reg.tpm_tcti || cli->csr_key))
    return usage_error("%s", "register needs --registration-id ID (only "
                       "--tpm without --csr-key derives it)");
  if (!!cli->reg.symmetric_key + !!cli->reg.group_key +
          !!cli->reg.cert_file + !!cli->reg.tpm_tcti != 1)
    return usage_error("%s", "register needs exactly one of "
                       "--symmetric-key B64, --group-key B64, --cert FILE "
                       "or --tpm TCTI");
  if (!cli->reg.cert_file != !cli->reg.key_file)
    return usage_error("%s", "--cert FILE and --key FILE go together");
  if (cli->cert_out && !cli->csr_key)
    return usage_error("%s", "--cert-out goes with --csr-key");
  return 0;
}

static void print_outcome(const struct cli *cli,
                          const struct provd_device_result *r, int ok)
{
  if (cli->json) {
    if (r->registration_state_json)
      printf("%s\n", r->registration_state_json);
    return;
  }
  if (ok && cli->reg.tpm_tcti && !cli->reg.registration_id)
    printf("assigned hub=%s device_id=%s registration_id=%s\n",
           r->assigned_hub, r->device_id, r->registration_id);
  else if (ok)
    printf("assigned hub=%s device_id=%s\n", r->assigned_hub, r->device_id);
}

/* What an operator needs to enroll this TPM. */
static int run_tpm_info(const struct cli *cli)
{
  if (!cli->reg.tpm_tcti)
    return usage_error("%s", "tpm-info needs --tpm TCTI");
  struct device_tpm *t = NULL;
  struct provd_err err;
  perr_clear(&err);
  if (device_tpm_open(cli->reg.tpm_tcti, &t, &err) != 0) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    return EXIT_REFUSED;
  }
  char id[IDS_TPM_REGID_LEN + 1];
  device_tpm_registration_id(t, id);
  if (cli->json)
    printf("{\"registrationId\":\"%s\",\"endorsementKey\":\"%s\","
           "\"storageRootKey\":\"%s\"}\n",
           id, device_tpm_endorsement_key(t), device_tpm_storage_root_key(t));
  else
    printf("registration_id=%s\nendorsement_key=%s\n", id,
           device_tpm_endorsement_key(t));
  device_tpm_close(t);
  return 0;
}

/* --csr-key: the CSR goes into the register body. */
static int attach_csr(struct cli *cli, char **csr_take)
{
  struct provd_err err;
  if (provd_device_csr_from_key_file(cli->csr_key, cli->reg.registration_id,
                                     csr_take, &err) != 0) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    return EXIT_USAGE;
  }
  cli->reg.csr_b64 = *csr_take;
  return 0;
}

/* Prints the issued chain (PEM, leaf first) and stores it; 0 or
 * EXIT_REFUSED. */
static int keep_issued_chain(const struct cli *cli,
                             const struct provd_device_result *r)
{
  struct provd_err err;
  char *pem = NULL, default_out[PROVD_DEVICE_MAX_ID + 8];
  int n = provd_device_issued_chain_pem(r->registration_state_json, &pem,
                                        &err);
  if (n < 0) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    return EXIT_REFUSED;
  }
  snprintf(default_out, sizeof default_out, "%s.pem",
           cli->reg.registration_id);
  const char *out = cli->cert_out ? cli->cert_out : default_out;
  FILE *f = fopen(out, "w");
  int ok = f && fputs(pem, f) >= 0;
  if (f)
    ok = fclose(f) == 0 && ok;
  if (!cli->json)
    fputs(pem, stdout);
  free(pem);
  if (!ok) {
    fprintf(stderr, "provd-device: cannot write %s\n", out);
    return EXIT_REFUSED;
  }
  fprintf(stderr, "provd-device: issued certificate chain (%d "
          "certificates, leaf first) written to %s\n", n, out);
  return 0;
}

/* 1 when --credentials already holds this device: a reboot does not
 * register again. */
static int already_registered(const struct cli *cli)
{
  struct provd_device_credentials c;
  struct provd_err err;
  if (!cli->credentials || cli->force ||
      provd_device_credentials_load(cli->credentials, &c, &err) != 0)
    return 0;
  int same = strcmp(c.id_scope, cli->reg.id_scope) == 0 &&
             (!cli->reg.registration_id ||
              strcmp(c.registration_id, cli->reg.registration_id) == 0);
  if (same)
    printf("assigned hub=%s device_id=%s (kept in %s; --force registers "
           "again)\n", c.assigned_hub, c.device_id, cli->credentials);
  memset(&c, 0, sizeof(c));
  return same;
}

static int keep_credentials(const struct cli *cli,
                            const struct provd_device_result *r)
{
  struct provd_err err;
  if (!cli->credentials)
    return 0;
  if (provd_device_credentials_save(cli->credentials, &cli->reg, r,
                                    &err) != 0) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    return EXIT_REFUSED;
  }
  fprintf(stderr, "provd-device: credentials kept in %s (mode 0600)\n",
          cli->credentials);
  return 0;
}

static int run_register(struct cli *cli)
{
  struct provd_device_result result;
  struct provd_err err;
  int rc = check_register_args(cli);
  if (rc != 0)
    return rc;
  if (already_registered(cli))
    return 0;
  const char *env_url = getenv("PROVD_URL");
  if (!cli->reg.url && env_url && env_url[0])
    cli->reg.url = env_url;
  char *csr = NULL;
  if (cli->csr_key && (rc = attach_csr(cli, &csr)) != 0)
    return rc;
  int ok = provd_device_register(&cli->reg, &result, &err) == 0;
  free(csr);
  print_outcome(cli, &result, ok);
  int kept = ok && cli->csr_key ? keep_issued_chain(cli, &result) : 0;
  if (ok && !kept)
    kept = keep_credentials(cli, &result);
  if (!ok) {
    fprintf(stderr, "provd-device: %s\n", err.msg);
    if (strcmp(err.code, "NETWORK") == 0)
      fprintf(stderr, "provd-device: is provd running (make run) and is "
              "--url right?\n");
    else if (strcmp(err.code, "TLS") == 0)
      fprintf(stderr, "provd-device: %s\n", cli->reg.ca_file
              ? "is --ca the CA that signed the server certificate?"
              : "for a local provd pass --ca var/tls/ca.pem");
  }
  provd_device_result_clear(&result);
  if (ok)
    return kept;
  if (strcmp(err.code, "BAD_INPUT") == 0 || strcmp(err.code, "BAD_URL") == 0)
    return EXIT_USAGE;
  return EXIT_REFUSED;
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "portal") == 0)
    return portal_main(argc - 1, argv + 1); /* its own options */
  struct cli cli;
  memset(&cli, 0, sizeof(cli));
  send_args_init(&cli.send);
  int rc = parse_args(argc, argv, &cli);
  if (rc != 0)
    return rc;
  if (cli.help) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (cli.version) {
    printf("provd-device %s\n", PROVD_VERSION);
    return 0;
  }
  if (optind >= argc)
    return usage_error("%s", "missing command (register, send, tpm-info)");
  const char *cmd = argv[optind];
  if (optind + 1 < argc)
    return usage_error("unexpected argument \"%s\"", argv[optind + 1]);
  if (strcmp(cmd, "register") == 0)
    return run_register(&cli);
  if (strcmp(cmd, "tpm-info") == 0)
    return run_tpm_info(&cli);
  if (strcmp(cmd, "send") == 0) {
    if (!cli.credentials)
      return usage_error("%s", "send needs --credentials FILE (written by "
                         "register --credentials FILE)");
    cli.send.tpm_tcti = cli.reg.tpm_tcti;
    return run_send(cli.credentials, &cli.send);
  }
  return usage_error("unknown command \"%s\" (try register)", cmd);
}
