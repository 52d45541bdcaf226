# Helpers for tests that run several provd instances on one throwaway
# PostgreSQL cluster (scripts/pg-test-cluster.sh).  Source after
# common.bash.  Instances share DATA_DIR (the TLS certificate and the
# service keys), as the machines of a deployment share copies of it.

PG_DIR=$WORK/pg
declare -a INST_PID INST_PORT
DATA_DIR=$WORK/data

multi_cleanup() {
  for pid in "${INST_PID[@]:-}"; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  [ -n "${HAPROXY_PID:-}" ] && kill "$HAPROXY_PID" 2>/dev/null || true
  "$SOURCE_DIR/scripts/pg-test-cluster.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
  cleanup
}
trap multi_cleanup EXIT

# pg_start: the cluster; sets CONNINFO.
pg_start() {
  CONNINFO=$("$SOURCE_DIR/scripts/pg-test-cluster.sh" start "$PG_DIR") ||
    { fail "PostgreSQL did not start"; exit 1; }
}

pg_pause() { "$SOURCE_DIR/scripts/pg-test-cluster.sh" pause "$PG_DIR"; }
pg_resume() { "$SOURCE_DIR/scripts/pg-test-cluster.sh" resume "$PG_DIR"; }

psql_q() { psql "$CONNINFO" -qtAX -c "$1"; }

# write_multi_config FILE PORT [extra yaml...]
write_multi_config() {
  local file=$1
  cat > "$file" <<YAML
id_scope: $SCOPE
listen: { https: "127.0.0.1:$2" }
data_dir: $DATA_DIR
plugin_path: [ $PLUGIN_DIR ]
workers: 2
storage:
  plugin: postgres
  options: { conninfo: "$CONNINFO", pool_size: 4, reconnect_max: 1s }
hubs:
  - { name: hub-1, hostname: hub-1.example.net, weight: 1 }
  - { name: hub-2, hostname: hub-2.example.net, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: allocation, name: hashed }
YAML
  shift 2
  for extra in "$@"; do printf '%s\n' "$extra" >> "$file"; done
}

# start_instance N [extra yaml...]: instance N on a free port; its log is
# $WORK/provd-N.log.
start_instance() {
  local n=$1; shift
  local port=${INST_PORT[$n]:-$(free_port)}
  write_multi_config "$WORK/provd-$n.yaml" "$port" "$@"
  : > "$WORK/banner-$n"
  "$PROVD" -c "$WORK/provd-$n.yaml" > "$WORK/banner-$n" 2>> "$WORK/provd-$n.log" &
  INST_PID[$n]=$!
  INST_PORT[$n]=$port
  for _ in $(seq 1 150); do
    grep -q "device endpoint" "$WORK/banner-$n" && return 0
    kill -0 "${INST_PID[$n]}" 2>/dev/null || { cat "$WORK/provd-$n.log" >&2; fail "instance $n exited during start"; exit 1; }
    sleep 0.1
  done
  fail "instance $n did not print its banner"; exit 1
}

kill_instance() { # N [SIGNAL]
  kill "-${2:-KILL}" "${INST_PID[$1]}" 2>/dev/null || true
  wait "${INST_PID[$1]}" 2>/dev/null || true
  INST_PID[$1]=
}

on() { PORT=${INST_PORT[$1]}; } # later `http` calls go to instance N

# curl_to PORT OUT METHOD PATH BODY [curl args...]: OUT.status gets the
# HTTP status, OUT the body; safe to run in the background.
curl_to() {
  local port=$1 out=$2 method=$3 path=$4 body=$5
  shift 5
  curl -sS -o "$out" -w '%{http_code}' --cacert "$DATA_DIR/tls/ca.pem" \
    -X "$method" -H 'Content-Type: application/json; charset=utf-8' \
    ${body:+--data-binary "$body"} "$@" "https://localhost:$port$path" > "$out.status" || true
}

reg_path() { echo "/$SCOPE/registrations/$1/register?api-version=2019-03-31"; }
op_path() { echo "/$SCOPE/registrations/$1/operations/$2?api-version=2019-03-31"; }
