/* provd restore FILE --data-dir DIR: writes a backup file made by
 * `provctl backup` into a data dir, so that provd started on it comes back
 * as the server that was saved (same store, CA, server key and owner
 * key).  Runs offline: provd must not be serving DIR meanwhile. */
#include "restore.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "util/backup_file.h"
#include "util/file_write.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2

struct restore_opts {
  const char *file;
  const char *data_dir;
  const char *passphrase_file;
  int force;
};

void restore_usage(FILE *out)
{
  fprintf(out,
          "usage: provd restore FILE --data-dir DIR [--passphrase-file FILE]\n"
          "                     [--force]\n"
          "\n"
          "Writes a backup made by `provctl backup` into DIR: the store\n"
          "(DIR/provd.db), the CA, the server certificate and key, and the\n"
          "service connection string.  provd started with --data-dir DIR\n"
          "and the same config then comes back as the server that was saved.\n"
          "Stop any provd serving DIR first.\n"
          "\n"
          "      --data-dir DIR      where to restore (created 0700 if missing)\n"
          "      --passphrase-file FILE\n"
          "                          the passphrase of an encrypted backup (its\n"
          "                          first line); else $" BACKUP_PASSPHRASE_ENV
          "\n"
          "      --force             restore into a DIR that is not empty,\n"
          "                          replacing the files the backup holds\n"
          "  -h, --help              this text\n");
}

static int parse(int argc, char **argv, struct restore_opts *o)
{
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, 'd'},
      {"passphrase-file", required_argument, NULL, 'p'},
      {"force", no_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'd': o->data_dir = optarg; break;
    case 'p': o->passphrase_file = optarg; break;
    case 'f': o->force = 1; break;
    case 'h': restore_usage(stdout); return 0;
    default: restore_usage(stderr); return EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || !o->data_dir) {
    fprintf(stderr, "provd restore: %s\n",
            optind >= argc ? "which backup FILE?"
            : optind + 1 < argc ? "one backup FILE only"
                                : "--data-dir DIR is required");
    restore_usage(stderr);
    return EXIT_USAGE;
  }
  o->file = argv[optind];
  return -1; /* go on */
}

/* 1 when dir exists and holds anything, 0 when missing or empty, -1 when
 * it cannot be read. */
static int dir_has_entries(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? 0 : -1;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL)
    found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return found;
}

/* The plain archive of FILE, opened with the passphrase when sealed. */
static int load_archive(const struct restore_opts *o,
                        struct backup_archive *a, struct provd_err *err)
{
  unsigned char *bytes = NULL, *plain = NULL;
  size_t len = 0, plain_len = 0;
  int rc = backup_read_file(o->file, &bytes, &len, err);
  if (rc == PROVD_OK && backup_is_sealed(bytes, len)) {
    char pass[BACKUP_PASSPHRASE_MAX];
    rc = backup_passphrase(o->passphrase_file, pass, sizeof(pass), err);
    if (rc == PROVD_NOT_FOUND)
      perr_set(err, "BACKUP_PASSPHRASE", "%s is encrypted: give "
               "--passphrase-file FILE or set " BACKUP_PASSPHRASE_ENV,
               o->file);
    if (rc == PROVD_OK)
      rc = backup_open_sealed(bytes, len, pass, &plain, &plain_len, err);
    OPENSSL_cleanse(pass, sizeof(pass));
  }
  if (rc == PROVD_OK)
    rc = plain ? backup_decode(plain, plain_len, a, err)
               : backup_decode(bytes, len, a, err);
  if (plain)
    OPENSSL_cleanse(plain, plain_len);
  free(plain);
  if (bytes)
    OPENSSL_cleanse(bytes, len);
  free(bytes);
  return rc;
}

/* Creates every missing directory of path up to its last '/' (0700). */
static int make_parents(const char *path, struct provd_err *err)
{
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s", path);
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      perr_set(err, "BACKUP_IO", "cannot create %s: %s", dir,
               strerror(errno));
      return PROVD_E_IO;
    }
    *p = '/';
  }
  return PROVD_OK;
}

/* A replaced store must not meet the old store's WAL: SQLite would
 * replay it into the restored file. */
static void drop_store_sidecars(const char *data_dir)
{
  static const char *const sidecars[] = {"-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof(sidecars) / sizeof(sidecars[0]); i++) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s%s", data_dir, BACKUP_STORE_ENTRY,
             sidecars[i]);
    unlink(path);
  }
}

static int write_entries(const struct restore_opts *o,
                         const struct backup_archive *a,
                         struct provd_err *err)
{
  drop_store_sidecars(o->data_dir);
  for (size_t i = 0; i < a->n; i++) {
    const struct backup_entry *e = &a->e[i];
    char path[4200];
    if (snprintf(path, sizeof(path), "%s/%s", o->data_dir, e->name) >=
        (int)sizeof(path)) {
      perr_set(err, "BACKUP_IO", "--data-dir is too long");
      return PROVD_E_INVAL;
    }
    /* Nothing the backup writes is for other users. */
    unsigned mode = (e->mode & 0700) | 0600;
    int rc = make_parents(path, err);
    if (rc == PROVD_OK &&
        file_write_atomic(path, e->data, e->len, mode, o->force, err) != 0)
      rc = PROVD_E_IO;
    if (rc != PROVD_OK)
      return rc;
  }
  return PROVD_OK;
}

static int restore(const struct restore_opts *o)
{
  int used = dir_has_entries(o->data_dir);
  if (used < 0) {
    fprintf(stderr, "provd restore: cannot read %s: %s\n", o->data_dir,
            strerror(errno));
    return EXIT_FAILED;
  }
  if (used && !o->force) {
    fprintf(stderr, "provd restore: %s is not empty; restore into a new "
            "directory, or stop the provd using it and pass --force to "
            "replace the files the backup holds\n", o->data_dir);
    return EXIT_FAILED;
  }
  struct provd_err err = {0};
  struct backup_archive a = {0};
  int rc = load_archive(o, &a, &err);
  if (rc == PROVD_OK && mkdir(o->data_dir, 0700) != 0 && errno != EEXIST) {
    perr_set(&err, "BACKUP_IO", "cannot create %s: %s", o->data_dir,
             strerror(errno));
    rc = PROVD_E_IO;
  }
  if (rc == PROVD_OK)
    rc = write_entries(o, &a, &err);
  if (rc != PROVD_OK) {
    fprintf(stderr, "provd restore: %s\n", err.msg);
    backup_archive_clear(&a);
    return EXIT_FAILED;
  }
  int has_store = backup_find(&a, BACKUP_STORE_ENTRY) != NULL;
  printf("provd restore: wrote %zu files into %s\n", a.n, o->data_dir);
  if (!has_store)
    printf("provd restore: the backup holds no store (it was taken with "
           "--keys-only): restore the database with its own tools "
           "(PostgreSQL: pg_restore)\n");
  printf("provd restore: start provd with --data-dir %s and the same "
         "config\n", o->data_dir);
  backup_archive_clear(&a);
  return 0;
}

int restore_main(int argc, char **argv)
{
  struct restore_opts o = {0};
  int rc = parse(argc, argv, &o);
  if (rc >= 0)
    return rc;
  return restore(&o);
}
