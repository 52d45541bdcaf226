/* The error every provd API hands back: a stable reason code and a human
 * message.  Plugins see it opaque (plugin.h) and fill it through the host;
 * device code (device.h) reads it. */
#ifndef PROVD_ERR_H
#define PROVD_ERR_H

struct provd_err {
  char code[64];  /* stable reason code, e.g. "BAD_SIGNATURE"; "" = none */
  char msg[512];  /* human text, never a secret */
};

#endif /* PROVD_ERR_H */
