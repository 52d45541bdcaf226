/* geoLatency allocation: the candidate whose region is nearest the
 * device's, by a latency table declared in the options; ties, and devices
 * from a region the table does not know, are handed to `hashed`
 * (alloc_delegate).  Nothing is measured: the table is the operator's
 * statement of the network, so no probe ever leaves the machine.  See
 * docs/plugins/geo-latency.md. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provd/alloc.h"
#include "provd/host.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define GEO_MAX_NAME 64
#define GEO_MAX_HUBS 64
#define GEO_MAX_LINKS 1024
#define GEO_MAX_NETS 256
#define GEO_UNKNOWN INT64_MAX

struct hub_region {
  char hub[128];
  char region[GEO_MAX_NAME];
};

struct link {
  char from[GEO_MAX_NAME], to[GEO_MAX_NAME];
  int64_t ms;
};

/* A client_regions item: addresses in net/prefix come from region. */
struct net_region {
  int family; /* AF_INET or AF_INET6 */
  unsigned char net[16];
  unsigned prefix;
  char region[GEO_MAX_NAME];
};

struct geo {
  const struct provd_host_api *host; /* borrowed until destroy */
  char payload_field[GEO_MAX_NAME];
  char tie_policy[GEO_MAX_NAME];
  struct hub_region hubs[GEO_MAX_HUBS];
  size_t n_hubs;
  struct link links[GEO_MAX_LINKS];
  size_t n_links;
  struct net_region nets[GEO_MAX_NETS];
  size_t n_nets;
};

/* ---- lifecycle ---- */

static int geo_create(const struct provd_host_api *host,
                      struct provd_instance *inst, void **state,
                      struct provd_err *err)
{
  (void)inst;
  struct geo *g = calloc(1, sizeof(*g));
  if (!g) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  g->host = host;
  *state = g;
  return PROVD_OK;
}

static void geo_destroy(void *state)
{
  free(state);
}

/* A string member of a list item into dst (cap bytes), non-empty. */
static int item_str(const struct provd_host_api *h, const struct provd_cfg *it,
                    const char *what, size_t i, const char *key, char *dst,
                    size_t cap, struct provd_err *err)
{
  const char *v = NULL;
  if (h->cfg_str(it, key, &v) != PROVD_OK || !v || !*v ||
      strlen(v) >= cap) {
    h->err_set(err, "BAD_OPTION", "%s[%zu].%s: a string of 1..%zu bytes",
               what, i, key, cap - 1);
    return PROVD_E_CONFIG;
  }
  memcpy(dst, v, strlen(v) + 1);
  return PROVD_OK;
}

static int read_hubs(struct geo *g, const struct provd_cfg *opts,
                     struct provd_err *err)
{
  const struct provd_host_api *h = g->host;
  const struct provd_cfg *list = NULL;
  if (h->cfg_child(opts, "hub_regions", &list) != PROVD_OK)
    return PROVD_OK;
  size_t n = h->cfg_count(list);
  if (n > GEO_MAX_HUBS) {
    h->err_set(err, "BAD_OPTION", "hub_regions: at most %d items",
               GEO_MAX_HUBS);
    return PROVD_E_CONFIG;
  }
  for (size_t i = 0; i < n; i++) {
    const struct provd_cfg *it = NULL;
    struct hub_region *hr = &g->hubs[i];
    if (h->cfg_at(list, i, &it) != PROVD_OK ||
        item_str(h, it, "hub_regions", i, "hub", hr->hub, sizeof(hr->hub),
                 err) ||
        item_str(h, it, "hub_regions", i, "region", hr->region,
                 sizeof(hr->region), err))
      return PROVD_E_CONFIG;
  }
  g->n_hubs = n;
  return PROVD_OK;
}

static int read_links(struct geo *g, const struct provd_cfg *opts,
                      struct provd_err *err)
{
  const struct provd_host_api *h = g->host;
  const struct provd_cfg *list = NULL;
  if (h->cfg_child(opts, "latencies", &list) != PROVD_OK)
    return PROVD_OK;
  size_t n = h->cfg_count(list);
  if (n > GEO_MAX_LINKS) {
    h->err_set(err, "BAD_OPTION", "latencies: at most %d items",
               GEO_MAX_LINKS);
    return PROVD_E_CONFIG;
  }
  for (size_t i = 0; i < n; i++) {
    const struct provd_cfg *it = NULL;
    struct link *l = &g->links[i];
    if (h->cfg_at(list, i, &it) != PROVD_OK ||
        item_str(h, it, "latencies", i, "from", l->from, sizeof(l->from),
                 err) ||
        item_str(h, it, "latencies", i, "to", l->to, sizeof(l->to), err))
      return PROVD_E_CONFIG;
    if (h->cfg_int(it, "ms", &l->ms) != PROVD_OK || l->ms < 0 ||
        l->ms > 3600000) {
      h->err_set(err, "BAD_OPTION", "latencies[%zu].ms: 0..3600000", i);
      return PROVD_E_CONFIG;
    }
  }
  g->n_links = n;
  return PROVD_OK;
}

/* "10.0.0.0/8", "2001:db8::/32" into nr. */
static int parse_cidr(const char *text, struct net_region *nr)
{
  char addr[64];
  const char *slash = strchr(text, '/');
  size_t n = slash ? (size_t)(slash - text) : strlen(text);
  if (n == 0 || n >= sizeof(addr))
    return -1;
  memcpy(addr, text, n);
  addr[n] = '\0';
  nr->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
  unsigned max = nr->family == AF_INET6 ? 128 : 32;
  char *end = NULL;
  unsigned long prefix = slash ? strtoul(slash + 1, &end, 10) : max;
  if ((slash && (!slash[1] || *end)) || prefix > max ||
      inet_pton(nr->family, addr, nr->net) != 1)
    return -1;
  nr->prefix = (unsigned)prefix;
  return 0;
}

static int read_nets(struct geo *g, const struct provd_cfg *opts,
                     struct provd_err *err)
{
  const struct provd_host_api *h = g->host;
  const struct provd_cfg *list = NULL;
  if (h->cfg_child(opts, "client_regions", &list) != PROVD_OK)
    return PROVD_OK;
  size_t n = h->cfg_count(list);
  if (n > GEO_MAX_NETS) {
    h->err_set(err, "BAD_OPTION", "client_regions: at most %d items",
               GEO_MAX_NETS);
    return PROVD_E_CONFIG;
  }
  for (size_t i = 0; i < n; i++) {
    const struct provd_cfg *it = NULL;
    struct net_region *nr = &g->nets[i];
    char cidr[64];
    if (h->cfg_at(list, i, &it) != PROVD_OK ||
        item_str(h, it, "client_regions", i, "cidr", cidr, sizeof(cidr),
                 err) ||
        item_str(h, it, "client_regions", i, "region", nr->region,
                 sizeof(nr->region), err))
      return PROVD_E_CONFIG;
    if (parse_cidr(cidr, nr) != 0) {
      h->err_set(err, "BAD_OPTION", "client_regions[%zu].cidr: '%s' is not "
                 "ADDRESS/PREFIX", i, cidr);
      return PROVD_E_CONFIG;
    }
  }
  g->n_nets = n;
  return PROVD_OK;
}

static int geo_configure(void *state, const struct provd_cfg *opts,
                         struct provd_err *err)
{
  struct geo *g = state;
  const struct provd_host_api *h = g->host;
  const char *field = "region", *tie = "hashed";
  if (opts) {
    h->cfg_str(opts, "payload_field", &field);
    h->cfg_str(opts, "tie_policy", &tie);
  }
  if (!field || !*field || strlen(field) >= sizeof(g->payload_field) ||
      !tie || !*tie || strlen(tie) >= sizeof(g->tie_policy)) {
    h->err_set(err, "BAD_OPTION",
               "payload_field and tie_policy: 1..%d bytes", GEO_MAX_NAME - 1);
    return PROVD_E_CONFIG;
  }
  snprintf(g->payload_field, sizeof(g->payload_field), "%s", field);
  snprintf(g->tie_policy, sizeof(g->tie_policy), "%s", tie);
  if (!opts)
    return PROVD_OK;
  int rc = read_hubs(g, opts, err);
  if (rc == PROVD_OK)
    rc = read_links(g, opts, err);
  return rc == PROVD_OK ? read_nets(g, opts, err) : rc;
}

/* ---- the choice ---- */

/* The hub's own region (managed at run time) first, then hub_regions. */
static const char *region_of_hub(const struct geo *g,
                                 const struct provd_hub_info *hub)
{
  if (PROVD_HAS(hub, struct provd_hub_info, region) && hub->region &&
      *hub->region)
    return hub->region;
  for (size_t i = 0; i < g->n_hubs; i++)
    if (strcmp(g->hubs[i].hub, hub->name) == 0 ||
        strcmp(g->hubs[i].hub, hub->hostname) == 0)
      return g->hubs[i].region;
  return NULL;
}

/* Latency between two regions, either direction; 0 within a region. */
static int64_t latency(const struct geo *g, const char *a, const char *b)
{
  if (strcmp(a, b) == 0)
    return 0;
  for (size_t i = 0; i < g->n_links; i++) {
    const struct link *l = &g->links[i];
    if ((strcmp(l->from, a) == 0 && strcmp(l->to, b) == 0) ||
        (strcmp(l->from, b) == 0 && strcmp(l->to, a) == 0))
      return l->ms;
  }
  return GEO_UNKNOWN;
}

static int region_known(const struct geo *g,
                        const struct provd_alloc_request *req,
                        const char *region)
{
  for (size_t i = 0; i < req->n_hubs; i++) {
    const char *r = region_of_hub(g, req->hubs[i]);
    if (r && strcmp(r, region) == 0)
      return 1;
  }
  for (size_t i = 0; i < g->n_hubs; i++)
    if (strcmp(g->hubs[i].region, region) == 0)
      return 1;
  for (size_t i = 0; i < g->n_links; i++)
    if (strcmp(g->links[i].from, region) == 0 ||
        strcmp(g->links[i].to, region) == 0)
      return 1;
  return 0;
}

static int prefix_matches(const unsigned char *a, const unsigned char *net,
                          unsigned prefix)
{
  unsigned full = prefix / 8, rest = prefix % 8;
  if (memcmp(a, net, full) != 0)
    return 0;
  unsigned char mask = (unsigned char)(0xFF << (8 - rest));
  return rest == 0 || (a[full] & mask) == (net[full] & mask);
}

/* The region of the first client_regions item holding the address. */
static const char *region_of_address(const struct geo *g, const char *ip)
{
  unsigned char a[16];
  int family = ip && strchr(ip, ':') ? AF_INET6 : AF_INET;
  if (!ip || inet_pton(family, ip, a) != 1)
    return NULL;
  for (size_t i = 0; i < g->n_nets; i++)
    if (g->nets[i].family == family &&
        prefix_matches(a, g->nets[i].net, g->nets[i].prefix))
      return g->nets[i].region;
  return NULL;
}

static int hand_over(const struct geo *g, struct provd_alloc_result *res,
                     const char *const *hubs, size_t n, const char *fmt,
                     const char *a)
{
  char why[256];
  snprintf(why, sizeof(why), fmt, a);
  return g->host->alloc_delegate(res, g->tie_policy, hubs, n, why);
}

static int geo_allocate(void *state, struct provd_call *call,
                        const struct provd_alloc_request *req,
                        struct provd_alloc_result *res, struct provd_err *err)
{
  (void)call;
  (void)err;
  struct geo *g = state;
  const struct provd_host_api *h = g->host;
  const char *device = NULL;
  if (!req->payload ||
      h->cfg_str(req->payload, g->payload_field, &device) != PROVD_OK ||
      !device || !*device)
    device = PROVD_HAS(req, struct provd_alloc_request, client_address)
                 ? region_of_address(g, req->client_address)
                 : NULL;
  if (!device)
    return hand_over(g, res, NULL, 0,
                     "no region in the payload field '%s' and none for the "
                     "client address: unknown region",
                     g->payload_field);
  if (!region_known(g, req, device))
    return hand_over(g, res, NULL, 0, "unknown region '%s'", device);
  int64_t best = GEO_UNKNOWN;
  const char *tied[GEO_MAX_HUBS];
  size_t n_tied = 0;
  for (size_t i = 0; i < req->n_hubs && i < GEO_MAX_HUBS; i++) {
    const char *r = region_of_hub(g, req->hubs[i]);
    int64_t ms = r ? latency(g, device, r) : GEO_UNKNOWN;
    if (ms == GEO_UNKNOWN || ms > best)
      continue;
    if (ms < best)
      n_tied = 0;
    best = ms;
    tied[n_tied++] = req->hubs[i]->name;
  }
  if (n_tied == 0)
    return hand_over(g, res, NULL, 0,
                     "no candidate hub has a latency from region '%s'",
                     device);
  char why[256];
  snprintf(why, sizeof(why), "geoLatency: %lld ms from region %s",
           (long long)best, device);
  if (n_tied == 1)
    return h->alloc_set_hub(res, tied[0], why);
  return g->host->alloc_delegate(res, g->tie_policy, tied, n_tied, why);
}

/* ---- descriptor ---- */

/* Keep docs/plugins/geo-latency.md in sync (test_plugin_docs checks it). */
static const struct provd_option geo_options[] = {
    {"hub_regions", PROVD_OPT_NODE, NULL, 0,
     "List of { hub: NAME, region: REGION }: where each hub is.", NULL},
    {"latencies", PROVD_OPT_NODE, NULL, 0,
     "List of { from: REGION, to: REGION, ms: N }: latency between two "
     "regions, either direction; 0 within one region.",
     NULL},
    {"client_regions", PROVD_OPT_NODE, NULL, 0,
     "List of { cidr: ADDRESS/PREFIX, region: REGION }: the region of a "
     "device by its IP address, first match, when its payload names none.",
     NULL},
    {"payload_field", PROVD_OPT_STRING, "region", 0,
     "The member of the device's registration payload that names its "
     "region.",
     NULL},
    {"tie_policy", PROVD_OPT_STRING, "hashed", 0,
     "The policy that chooses among equally near hubs and for devices "
     "from an unknown region.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle geo_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = geo_create,
    .configure = geo_configure,
    .destroy = geo_destroy,
};

static const struct provd_alloc_ops geo_ops = {
    .struct_size = sizeof(struct provd_alloc_ops),
    .policy = "geoLatency",
    .allocate = geo_allocate,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ALLOCATION,
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 5,
    .name = "geo-latency",
    .version = PROVD_VERSION,
    .description = "Lowest latency from the device's region by a declared "
                   "table, ties hashed (DPS allocationPolicy geoLatency)",
    .vendor = "provd",
    .options = geo_options,
    .lifecycle = &geo_lifecycle,
    .ops = &geo_ops,
};
