/* The backup file of `provctl backup` and `provd restore`: the files of a
 * data dir that make provd come back as the same server (the store, the
 * local CA and its key, the server certificate and key, the service
 * connection string), optionally sealed with a passphrase.
 *
 * Plain layout (integers big-endian):
 *   "PROVDBAK" u32 version u32 n_entries
 *   n x { u16 name_len, name, u32 mode, u64 size, size bytes }
 *   SHA-256 of everything before it (a truncated or damaged file is
 *   refused, not half restored)
 * Sealed layout: "PROVDENC" u32 version u8 kdf (1: scrypt) u8 log2(N)
 *   u8 r u8 p, 16-byte salt, 12-byte nonce, then the plain file encrypted
 *   with AES-256-GCM under the scrypt key, the header as associated data,
 *   and the 16-byte tag.  Nothing is written with a key derived from an
 *   empty passphrase.
 *
 * Entry names are relative paths inside the data dir ("tls/ca.key"),
 * checked on decode: no "..", no absolute path, a small character set. */
#ifndef CORE_UTIL_BACKUP_FILE_H
#define CORE_UTIL_BACKUP_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "provd/plugin.h" /* PROVD_OK and the other statuses */
#include "util/err.h"

/* Bounds: the archive is built and read in memory. */
#define BACKUP_MAX_BYTES ((size_t)1 << 30)
#define BACKUP_MAX_ENTRIES 16
#define BACKUP_NAME_MAX 64
#define BACKUP_PASSPHRASE_MAX 1024
/* Where provctl and provd restore take a passphrase when no file is
 * named (never on the command line: argv is visible to every user). */
#define BACKUP_PASSPHRASE_ENV "PROVD_BACKUP_PASSPHRASE"
/* The store's entry: restored as DATA_DIR/provd.db, the sqlite plugin's
 * default path. */
#define BACKUP_STORE_ENTRY "provd.db"

struct backup_entry {
  char name[BACKUP_NAME_MAX];
  uint32_t mode;        /* permission bits only */
  unsigned char *data;  /* owned; cleansed on clear (keys) */
  size_t len;
};

struct backup_archive {
  struct backup_entry e[BACKUP_MAX_ENTRIES];
  size_t n;
};

/* Wipes and frees every entry. */
void backup_archive_clear(struct backup_archive *a);
/* Adds the file at path as entry name, with its permission bits.
 * PROVD_NOT_FOUND (nothing added) when the file does not exist. */
int backup_add_file(struct backup_archive *a, const char *name,
                    const char *path, struct provd_err *err);
/* Looks an entry up by name; NULL when absent. */
const struct backup_entry *backup_find(const struct backup_archive *a,
                                       const char *name);

/* Plain bytes of the archive; *out is malloc'd (caller frees). */
int backup_encode(const struct backup_archive *a, unsigned char **out,
                  size_t *out_len, struct provd_err *err);
/* Parses plain bytes into a (cleared first); BACKUP_DAMAGED when the
 * bytes are not a whole, intact backup. */
int backup_decode(const unsigned char *in, size_t len,
                  struct backup_archive *a, struct provd_err *err);

/* 1 when the bytes are a sealed backup. */
int backup_is_sealed(const unsigned char *in, size_t len);
/* Seals plain bytes; *out is malloc'd (caller frees). */
int backup_seal(const unsigned char *plain, size_t len,
                const char *passphrase, unsigned char **out,
                size_t *out_len, struct provd_err *err);
/* Opens a sealed backup; BACKUP_BAD_PASSPHRASE when the passphrase is
 * wrong or the file was altered (GCM cannot tell which). */
int backup_open_sealed(const unsigned char *in, size_t len,
                       const char *passphrase, unsigned char **plain,
                       size_t *plain_len, struct provd_err *err);

/* The passphrase: the first line of `file` when it is not NULL, else
 * $PROVD_BACKUP_PASSPHRASE.  PROVD_NOT_FOUND when neither is given;
 * BACKUP_PASSPHRASE when the one given is empty or unreadable. */
int backup_passphrase(const char *file, char *out, size_t cap,
                      struct provd_err *err);

/* Reads a whole file of at most BACKUP_MAX_BYTES; caller frees *out. */
int backup_read_file(const char *path, unsigned char **out, size_t *len,
                     struct provd_err *err);
#endif
