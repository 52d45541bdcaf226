#!/usr/bin/env bash
# mosquitto-preload.sh PLUGIN.so: prints what LD_PRELOAD mosquitto needs to
# load PLUGIN.so — the ASan and UBSan runtimes when the plugin was built
# with sanitizers (mosquitto itself does not link them), else nothing.
set -euo pipefail
# grep reads everything: with pipefail, grep -q stopping early would make
# ldd die of SIGPIPE and the test fail at random.
if ldd "$1" 2>/dev/null | grep libasan >/dev/null; then
  printf '%s:%s\n' "$(gcc -print-file-name=libasan.so)" "$(gcc -print-file-name=libubsan.so)"
fi
