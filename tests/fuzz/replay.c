/* Runs LLVMFuzzerTestOneInput over files or directories of inputs, so a
 * corpus can be replayed with any compiler (gcc, no libFuzzer):
 *   replay_http_parse tests/fuzz/corpus/http_parse crash-1234
 * Like libFuzzer, it calls LLVMFuzzerInitialize first when the target
 * defines one. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX_INPUT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target (weak: NULL when the target has none). */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  uint8_t *buf = malloc(REPLAY_MAX_INPUT);
  size_t n = buf ? fread(buf, 1, REPLAY_MAX_INPUT, f) : 0;
  fclose(f);
  if (!buf)
    return -1;
  /* Exact-size copy, like libFuzzer hands it over. */
  uint8_t *exact = malloc(n ? n : 1);
  if (exact) {
    memcpy(exact, buf, n);
    LLVMFuzzerTestOneInput(exact, n);
  }
  free(exact);
  free(buf);
  return exact ? 0 : -1;
}

static int run_path(const char *path, int *count)
{
  struct stat st;
  if (stat(path, &st) < 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return run_file(path);
  }
  DIR *d = opendir(path);
  if (!d) {
    perror(path);
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    if (run_path(child, count) < 0)
      rc = -1;
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv)
{
  int count = 0, rc = 0;
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++)
    if (run_path(argv[i], &count) < 0)
      rc = 1;
  printf("replayed %d inputs\n", count);
  if (count == 0) {
    /* An empty or missing corpus would make the test pass vacuously. */
    fprintf(stderr, "no inputs to replay\n");
    rc = 1;
  }
  return rc;
}
