#!/usr/bin/env bash
# mosquitto-preload.sh PLUGIN.so: prints what LD_PRELOAD mosquitto needs to
# load PLUGIN.so — the ASan and UBSan runtimes when the plugin was built
# with sanitizers (mosquitto itself does not link them), else nothing.
set -euo pipefail
if ldd "$1" 2>/dev/null | grep -q libasan; then
  printf '%s:%s\n' "$(gcc -print-file-name=libasan.so)" "$(gcc -print-file-name=libubsan.so)"
fi
