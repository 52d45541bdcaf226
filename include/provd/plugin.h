/* provd plugin ABI: the descriptor every plugin exports, status codes,
 * option schemas and the instance lifecycle.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * `provd_plugin_v1`, a `const struct provd_plugin`.  The host validates it
 * before any plugin code runs, then drives the lifecycle
 *   create -> configure -> start -> (ops ...) -> stop -> destroy.
 * Every host service arrives in `struct provd_host_api` (host.h); a plugin
 * never links against the daemon.
 *
 * Versioning rules (docs/plugin-abi.md): structs that carry `struct_size`
 * only grow at the end; enum values and status numbers are appended and
 * never reused.  Test for a field with PROVD_HAS() before reading it.
 */
#ifndef PROVD_PLUGIN_H
#define PROVD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROVD_EXPORT __attribute__((visibility("default")))

#define PROVD_ABI_MAJOR 1
#define PROVD_ABI_MINOR 10
#define PROVD_PLUGIN_MAGIC 0x31565250u /* "PRV1" little-endian */
#define PROVD_PLUGIN_SYMBOL "provd_plugin_v1"

/* Status codes: 0 success, > 0 outcomes (normal answers), < 0 errors
 * (could not decide).  Append only; never renumber or reuse. */
#define PROVD_STATUS_MAP(XX)                                              \
  XX(OK, 0, "success")                                                    \
  XX(PENDING, 1, "result follows later")                                  \
  XX(DECLINED, 2, "not handled here; ask the next plugin")                \
  XX(DENIED, 3, "definitive negative decision")                           \
  XX(CHALLENGE, 4, "another round is needed")                             \
  XX(NOT_FOUND, 5, "no such record")                                      \
  XX(EXISTS, 6, "record already exists")                                  \
  XX(PRECONDITION_FAILED, 7, "etag does not match")                       \
  XX(E_INVAL, -1, "invalid argument")                                     \
  XX(E_NOMEM, -2, "out of memory")                                        \
  XX(E_CONFIG, -3, "invalid configuration")                               \
  XX(E_UNAVAILABLE, -4, "dependency unavailable, retry later")            \
  XX(E_TIMEOUT, -5, "deadline exceeded")                                  \
  XX(E_CANCELED, -6, "canceled by the host")                              \
  XX(E_UNSUPPORTED, -7, "operation or version not supported")             \
  XX(E_IO, -8, "I/O error")                                               \
  XX(E_PROTOCOL, -9, "malformed input from device or peer")               \
  XX(E_INTERNAL, -10, "internal error")

enum provd_status {
#define PROVD_STATUS_ENUM_(name, val, msg) PROVD_##name = (val),
  PROVD_STATUS_MAP(PROVD_STATUS_ENUM_)
#undef PROVD_STATUS_ENUM_
};

/* Opaque host-owned types. */
struct provd_host_api; /* host services (host.h) */
struct provd_instance; /* host-side handle of one configured instance */
struct provd_cfg;      /* read-only view of a config or JSON node */
struct provd_err;      /* error sink: reason code + message */
struct provd_call;     /* one request: deadline, trace id */

/* Plugin kinds.  Append only. */
enum provd_kind {
  PROVD_KIND_ATTESTATION = 1,
  PROVD_KIND_ALLOCATION = 2,
  PROVD_KIND_NOTIFIER = 3,
  PROVD_KIND_HUB = 4,
  PROVD_KIND_STORAGE = 5
};

/* Option types of the schema.  The host parses and checks values before
 * configure() sees them.  Append only. */
enum provd_opt_type {
  PROVD_OPT_STRING = 1,
  PROVD_OPT_BOOL = 2,
  PROVD_OPT_INT = 3,
  PROVD_OPT_DOUBLE = 4,
  PROVD_OPT_DURATION = 5,    /* "30s", "250ms", "5m"; read as ms */
  PROVD_OPT_SIZE = 6,        /* "16KiB", "1MB", 4096; read as bytes */
  PROVD_OPT_ENUM = 7,        /* one of enum_values */
  PROVD_OPT_STRING_LIST = 8, /* YAML sequence of strings */
  PROVD_OPT_PATH = 9,        /* file system path */
  PROVD_OPT_URL = 10,        /* scheme://... */
  PROVD_OPT_NODE = 11        /* any YAML subtree, read with cfg_child/at */
};

#define PROVD_OPT_REQUIRED (1u << 0)
/* Never logged or dumped.  The value may also be given as `NAME_file:
 * PATH`; the host reads the file (trailing newline removed). */
#define PROVD_OPT_SENSITIVE (1u << 1)
#define PROVD_OPT_DEPRECATED (1u << 2)

/* One option of a plugin's schema.  Schemas are static arrays ended by an
 * entry whose name is NULL. */
struct provd_option {
  const char *name;             /* snake_case */
  enum provd_opt_type type;
  const char *default_value;    /* YAML scalar text, or NULL for none */
  uint32_t flags;               /* PROVD_OPT_* */
  const char *description;      /* one sentence, goes into the docs */
  const char *const *enum_values; /* PROVD_OPT_ENUM: NULL-ended list */
};

/* Lifecycle.  Called from the daemon's control thread, never
 * concurrently for one instance.  Every function but create and destroy
 * is optional (NULL). */
struct provd_lifecycle {
  uint32_t struct_size;
  /* Allocate state.  No I/O, no threads.  `host` and `inst` stay valid
   * until destroy() returns. */
  int (*create)(const struct provd_host_api *host,
                struct provd_instance *inst, void **state,
                struct provd_err *err);
  /* Read options (already checked against the schema) through the host's
   * cfg_* accessors.  Pointers are borrowed for the call: copy what you
   * keep.  All or nothing. */
  int (*configure)(void *state, const struct provd_cfg *options,
                   struct provd_err *err);
  /* Open files, connections, threads. */
  int (*start)(void *state, struct provd_err *err);
  /* After stop() returns: no threads, no host calls. */
  void (*stop)(void *state);
  void (*destroy)(void *state);
};

/* Descriptor flags. */
#define PROVD_PLUGIN_THREADSAFE (1u << 0) /* ops may run concurrently */
/* ABI 1.1: ops only compute (no I/O, no locks held long, microseconds):
 * the host may run them on its store writer thread, which saves a
 * thread handoff per registration.  Attestation and allocation plugins
 * that make network or disk calls must not set it. */
#define PROVD_PLUGIN_NONBLOCKING (1u << 1)

struct provd_plugin {
  uint32_t magic;          /* PROVD_PLUGIN_MAGIC */
  uint16_t abi_major;      /* PROVD_ABI_MAJOR it was built with */
  uint16_t abi_minor;      /* PROVD_ABI_MINOR it was built with */
  uint32_t struct_size;    /* sizeof(struct provd_plugin) */
  uint32_t kind;           /* enum provd_kind */
  uint32_t flags;          /* PROVD_PLUGIN_* */
  uint16_t min_host_minor; /* oldest host minor it runs on */
  uint16_t reserved0;
  const char *name;        /* YAML `name:`, [a-z0-9][a-z0-9_-]{0,31} */
  const char *version;     /* the plugin's own version */
  const char *description; /* one line */
  const char *vendor;
  const struct provd_option *options;      /* schema, NULL-name ended */
  const struct provd_lifecycle *lifecycle;
  const void *ops; /* the kind's table: attest.h, alloc.h, storage.h... */
  /* ABI minor >= 1: append here */
};

/* Declare the descriptor: `PROVD_PLUGIN_DEFINE = { PROVD_PLUGIN_HEADER,
 * .kind = ..., ... };` */
#define PROVD_PLUGIN_DEFINE                                               \
  PROVD_EXPORT extern const struct provd_plugin provd_plugin_v1;          \
  PROVD_EXPORT const struct provd_plugin provd_plugin_v1

#define PROVD_PLUGIN_HEADER                                               \
  .magic = PROVD_PLUGIN_MAGIC, .abi_major = PROVD_ABI_MAJOR,              \
  .abi_minor = PROVD_ABI_MINOR, .struct_size = sizeof(struct provd_plugin)

/* True when the versioned struct `ptr` (of `type`) carries `field`. */
#define PROVD_HAS(ptr, type, field)                                       \
  ((ptr)->struct_size >=                                                  \
   offsetof(type, field) + sizeof(((type *)0)->field))

#ifdef __cplusplus
}
#endif
#endif /* PROVD_PLUGIN_H */
