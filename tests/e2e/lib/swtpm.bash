# A private swtpm for e2e tests: start_swtpm [STATE_DIR] sets TPM_PORT,
# SWTPM_PID and TCTI (the swtpm TCTI wants the control port at
# TPM_PORT + 1); its state lives in STATE_DIR (default $WORK/tpm), so a
# swtpm started again on the same directory is the same TPM after a
# reboot.  stop_swtpm ends the one SWTPM_PID names.  Source after
# common.bash; the caller adds stop_swtpm to its EXIT trap.
SWTPM_PID=
free_port_pair() {
  python3 - <<'PY'
import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
PY
}
stop_swtpm() {
  if [ -n "$SWTPM_PID" ]; then
    kill "$SWTPM_PID" 2>/dev/null
    wait "$SWTPM_PID" 2>/dev/null
  fi
  SWTPM_PID=
  return 0
}

start_swtpm() {
  local dir=${1:-$WORK/tpm}
  TPM_PORT=$(free_port_pair)
  mkdir -p "$dir"
  swtpm socket --tpm2 --server "type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1" \
    --flags not-need-init,startup-clear --tpmstate "dir=$dir" &
  SWTPM_PID=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$TPM_PORT") 2>/dev/null && break
    sleep 0.05
  done
  TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
}
