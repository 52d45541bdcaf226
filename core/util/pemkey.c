#include "util/pemkey.h"

#include <openssl/err.h>
#include <openssl/pem.h>

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

EVP_PKEY *pemkey_read_unencrypted(const char *path)
{
  BIO *in = BIO_new_file(path, "r");
  EVP_PKEY *key =
      in ? PEM_read_bio_PrivateKey(in, NULL, no_passphrase, NULL) : NULL;
  BIO_free(in);
  ERR_clear_error();
  return key;
}
