/* The device library's API lives in the public header; this name stays
 * for the tool's own files. */
#ifndef TOOLS_PROVD_DEVICE_H
#define TOOLS_PROVD_DEVICE_H

#include "provd/device.h"
#include "util/err.h"

#endif
