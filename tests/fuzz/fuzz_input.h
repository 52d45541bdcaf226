/* Helpers the fuzz targets share: the contract check and splitting an
 * input into NUL-separated parts. */
#ifndef TESTS_FUZZ_FUZZ_INPUT_H
#define TESTS_FUZZ_FUZZ_INPUT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A broken promise of the code under test: libFuzzer reports the abort
 * with the input. */
static inline void require(int ok)
{
  if (!ok)
    abort();
}

/* The part of data that starts at *at and ends before the next NUL (or
 * at the end), as an exact-size NUL-ended copy the caller frees; *at
 * moves past the NUL.  Past the end: "". */
static inline char *fuzz_next_part(const uint8_t *data, size_t size,
                                   size_t *at)
{
  size_t start = *at < size ? *at : size;
  const uint8_t *end = memchr(data + start, '\0', size - start);
  size_t n = (end ? (size_t)(end - data) : size) - start;
  char *s = malloc(n + 1);
  require(s != NULL);
  memcpy(s, data + start, n);
  s[n] = '\0';
  *at = start + n + 1;
  return s;
}

#endif
