#include "util/secret.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void secret_free(char *text)
{
  if (text)
    OPENSSL_cleanse(text, strlen(text));
  free(text);
}
