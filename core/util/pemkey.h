/* Private keys from PEM files, never prompting: an encrypted key would
 * make OpenSSL ask for a passphrase on the terminal of a daemon or a
 * device tool. */
#ifndef CORE_UTIL_PEMKEY_H
#define CORE_UTIL_PEMKEY_H

#include <openssl/evp.h>

/* The unencrypted PEM private key in path; NULL when the file cannot be
 * read, holds no such key, or the key is encrypted.  OpenSSL's error
 * queue is left empty.  Caller frees. */
EVP_PKEY *pemkey_read_unencrypted(const char *path);

#endif
