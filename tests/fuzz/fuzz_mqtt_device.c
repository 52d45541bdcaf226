/* libFuzzer target over what the DPS device API reads out of MQTT packets
 * once fuzz_mqtt's codec has framed them (core/api/device_mqtt.c,
 * compiled into this file to reach its statics): the CONNECT username
 * "{scope}/registrations/{regId}/api-version=..." (parse_username), a
 * PUBLISH topic's $rid and operationId (http_query_param, rid_ok) and the
 * register payload (json_body_read, device_body_problem).
 * Input: username \0 topic query \0 payload.
 * Besides "no crash, no leak" it checks the contract: a username accepted
 * is exactly scope "/registrations/" regId "/" query, with both parts
 * within their buffers; an accepted $rid is non-empty, short and made of
 * safe bytes only (it is echoed in the answer's topic); an accepted
 * payload is a JSON object. */
#include "api/device_mqtt.c"

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_username(const char *user)
{
  char scope[64], regid[129];
  if (parse_username(user, scope, sizeof scope, regid, sizeof regid) != 0)
    return;
  size_t ns = strlen(scope), nr = strlen(regid);
  require(ns < sizeof scope && nr < sizeof regid);
  require(strncmp(user, scope, ns) == 0);
  require(strncmp(user + ns, "/registrations/", 15) == 0);
  require(strncmp(user + ns + 15, regid, nr) == 0);
  require(user[ns + 15 + nr] == '/');
}

static void check_topic(const char *query)
{
  struct http_request q = {.query = query};
  char rid[MAX_RID + 1], opid[128];
  int n = http_query_param(&q, "$rid", rid, sizeof rid);
  require(n >= -2 && n <= MAX_RID);
  if (n >= 0 && rid_ok(rid)) {
    require(strlen(rid) == (size_t)n && n > 0);
    require(strspn(rid, "0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ-._~:") == (size_t)n);
  }
  n = http_query_param(&q, "operationId", opid, sizeof opid);
  require(n < 0 || strlen(opid) == (size_t)n);
}

static void check_payload(const char *payload, size_t len)
{
  enum json_body_status why;
  json_t *body = json_body_read("application/json", payload, len, SIZE_MAX,
                                JSON_BODY_REQUIRED, &why);
  require((body != NULL) == (why == JSON_BODY_OK));
  if (!body)
    return;
  require(json_is_object(body));
  const char *problem = device_body_problem(body, false, "fuzz-device-01");
  require(!problem || problem[0]);
  problem = device_body_problem(body, true, "fuzz-device-01");
  require(!problem || problem[0]);
  json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t at = 0;
  char *user = fuzz_next_part(data, size, &at);
  char *topic = fuzz_next_part(data, size, &at);
  size_t rest = at < size ? size - at : 0;
  char *payload = malloc(rest ? rest : 1);
  require(payload != NULL);
  memcpy(payload, data + (at < size ? at : size), rest);
  check_username(user);
  check_topic(topic);
  check_payload(payload, rest);
  free(user);
  free(topic);
  free(payload);
  return 0;
}
