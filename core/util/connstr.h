/* The one parser of service connection strings
 * "HostName=h;SharedAccessKeyName=n;SharedAccessKey=k" (as the Azure
 * portal prints them), shared by provd, provctl and the load generator. */
#ifndef CORE_UTIL_CONNSTR_H
#define CORE_UTIL_CONNSTR_H

#include "util/err.h"

struct connstr {
  char host[256];
  char key_name[128];
  char key[512]; /* base64 text; a secret: callers wipe the struct */
};

/* Parts in any order, names case-insensitive, a value may contain '=';
 * blanks around the string, a part, a name or a value are ignored, as
 * are empty parts (";;", a trailing ';') and unknown names (the SDKs
 * accept e.g. DeviceId or GatewayHostName).  Refused with
 * BAD_CONNECTION_STRING: a part without '=', an empty or too long value,
 * a name given twice, a missing HostName, SharedAccessKeyName or
 * SharedAccessKey.  Messages never contain the key. */
int connstr_parse(const char *text, struct connstr *out,
                  struct provd_err *err);

#endif
