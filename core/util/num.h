/* Strict number parsing: command-line values, hex digits. */
#ifndef CORE_UTIL_NUM_H
#define CORE_UTIL_NUM_H

/* Parses all of text as a decimal integer in [min, max]; 0 on success,
 * -1 otherwise (empty, trailing characters, overflow, out of range). */
int num_parse_long(const char *text, long min, long max, long *out);

/* The value of one hex digit (either case), or -1. */
int num_hex_digit(unsigned char c);

#endif
