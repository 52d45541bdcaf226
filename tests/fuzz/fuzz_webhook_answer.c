/* libFuzzer target over the custom allocation webhook's answers
 * (plugins/allocation-custom-webhook/custom.c: read_answer), with the
 * real host API behind it (core/plugin/host_api.c: alloc_set_hub,
 * alloc_set_data).  The plugin's statics are reached by compiling
 * custom.c into this file.
 * Input: u16 big-endian HTTP status || the answer's body.  The
 * registration has two candidate hubs.
 * Besides "no crash, no leak" it checks the contract: an answer is taken
 * only with a 2xx status, as a JSON object naming one of the candidates
 * (case-insensitively); then the result holds that hub, an initialTwin
 * that is an object (or none) and the payload (or none); anything else is
 * PROVD_DENIED with a reason and leaves the result empty of a hub. */
#include "custom.c"

#include "plugin/loader.h"

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct provd_hub_info HUB_A = {
    sizeof(struct provd_hub_info), "hub-a", "hub-a.azure-devices.net", 1,
    NULL};
static const struct provd_hub_info HUB_B = {
    sizeof(struct provd_hub_info), "hub-b", "hub-b.example.org", 1, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  struct custom c = {.host = host_api(), .budget_ms = 1000};
  const struct provd_hub_info *const hubs[] = {&HUB_A, &HUB_B};
  struct provd_alloc_request req = {.struct_size = sizeof(req),
                                    .registration_id = "fuzz-device-01",
                                    .hubs = hubs,
                                    .n_hubs = 2};
  /* Exact-size copy of the body: one byte too far is caught. */
  size_t body_len = size - 2;
  uint8_t *body = malloc(body_len ? body_len : 1);
  require(body != NULL);
  memcpy(body, data + 2, body_len);
  struct provd_http_resp resp = {.struct_size = sizeof(resp),
                                 .status = (data[0] << 8) | data[1],
                                 .body = body,
                                 .body_len = body_len};
  struct provd_alloc_result res;
  memset(&res, 0, sizeof(res));
  struct failure f = {0};
  int rc = read_answer(&c, &req, &resp, &res, &f);
  require(f.status == resp.status);
  if (rc == PROVD_OK) {
    require(resp.status >= 200 && resp.status <= 299);
    require(is_candidate(&req, res.hub));
    require(!res.initial_twin || json_is_object(res.initial_twin));
    require(f.why[0] == '\0');
  } else {
    require(rc == PROVD_DENIED && f.why[0] != '\0' && res.hub[0] == '\0');
  }
  alloc_result_clear(&res);
  free(body);
  return 0;
}
