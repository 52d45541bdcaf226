/* Strings that hold secrets (keys, tokens): wiped before their memory
 * goes back to the allocator. */
#ifndef CORE_UTIL_SECRET_H
#define CORE_UTIL_SECRET_H

/* Overwrites text (NUL-terminated, or NULL) and frees it. */
void secret_free(char *text);

#endif
