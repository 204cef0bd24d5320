# Sourced by the comparison scripts (bench/run-throughput, bench/run-latency,
# bench/run-callgrind): starts one server of the comparison at a time on
# 127.0.0.1, on a free port, and stops it by its PID. Not a program.
#
#   servers_init        once, after `tmp` (a private directory the caller
#                       removes) and `build` (the build directory) are set:
#                       a throwaway CA and server certificate (never kept) for
#                       the TLS servers, and the servers' configuration files
#   server_start SYS    SYS is curvebus | nats | nats-tls | mosquitto |
#                       mosquitto-tls | zmq-proxy-curve | zmq-proxy-plain.
#                       Sets server_pid, and bench_cmd (an array: the harness
#                       program for SYS with its connection arguments and
#                       --server-pid). Returns 1 if the server did not come up.
#   server_stop         stops the running server: TERM, KILL after 5 s
#   harness_name SYS    the system name the harness prints for SYS
#   server_versions     one line: the servers' versions
#
# curvebus-broker runs its embedded default (a home in $tmp, keys made on the
# first start and kept for the others) with the per-name limits that protect
# a shared broker lifted (publish rate, sessions per name, handshakes per key,
# work budget); everything else, the per-session queue bound included, is the
# default a user gets. CURVEBUS_BROKER_ARGS adds broker flags.
# Callers call server_stop from their EXIT trap.

server_pid=
server_port=
bench_cmd=()
curvebus_limits=(--publish-rate 0 --max-sessions-per-name 1000000 --handshake-rate 0 --work-budget 0)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s).
wait_port() {
  local _
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

servers_init() {
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
      -subj "/CN=curvebus bench CA" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
      -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
    printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
      'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$tmp/ext.cnf"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
      -days 1 -extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>/dev/null
  )
  mkdir -p "$tmp/cb-home"
}

server_start() {
  local sys=$1 port
  port=$(free_port)
  server_port=$port
  bench_cmd=()
  case $sys in
    curvebus)
      rm -f "$tmp/cb-home/endpoint"
      # shellcheck disable=SC2086  # CURVEBUS_BROKER_ARGS is a list of flags
      CURVEBUS_HOME=$tmp/cb-home "$build/broker/curvebus-broker" --bind "tcp://127.0.0.1:$port" \
        --log-level warn "${curvebus_limits[@]}" ${CURVEBUS_BROKER_ARGS:-} \
        >>"$tmp/curvebus-broker.log" 2>&1 &
      server_pid=$!
      local _
      for _ in $(seq 100); do [ -s "$tmp/cb-home/endpoint" ] && break; sleep 0.1; done
      wait_port "$port" || { server_failed "$sys" "$tmp/curvebus-broker.log"; return 1; }
      bench_cmd=("$build/bench/curvebus-bench-client" --port "$port" --home "$tmp/cb-home")
      ;;
    nats | nats-tls)
      {
        echo "listen: 127.0.0.1:$port"
        echo 'write_deadline: "10s"'
        if [ "$sys" = nats-tls ]; then
          printf 'tls {\n  cert_file: "%s"\n  key_file: "%s"\n  timeout: 5\n}\n' \
            "$tmp/server.crt" "$tmp/server.key"
        fi
      } >"$tmp/$sys.conf"
      nats-server -c "$tmp/$sys.conf" -l "$tmp/$sys.log" &
      server_pid=$!
      wait_port "$port" || { server_failed "$sys" "$tmp/$sys.log"; return 1; }
      bench_cmd=("$build/bench/curvebus-bench-nats" --port "$port")
      [ "$sys" = nats-tls ] && bench_cmd+=(--tls --cafile "$tmp/ca.crt")
      ;;
    mosquitto | mosquitto-tls)
      # QoS 0 to live subscribers is queued up to max_queued_messages per
      # client (the ZeroMQ benches' high-water mark); beyond it Mosquitto drops.
      {
        echo "user $(id -un)"
        echo 'per_listener_settings false'
        echo 'allow_anonymous true'
        echo 'persistence false'
        echo 'max_queued_messages 100000'
        echo 'max_queued_bytes 0'
        echo "log_dest file $tmp/$sys.log"
        echo 'log_type error'
        echo 'log_type warning'
        echo "listener $port 127.0.0.1"
        if [ "$sys" = mosquitto-tls ]; then
          echo "cafile $tmp/ca.crt"
          echo "certfile $tmp/server.crt"
          echo "keyfile $tmp/server.key"
        fi
      } >"$tmp/$sys.conf"
      mosquitto -c "$tmp/$sys.conf" >>"$tmp/$sys.out" 2>&1 &
      server_pid=$!
      wait_port "$port" || { server_failed "$sys" "$tmp/$sys.out"; return 1; }
      bench_cmd=("$build/bench/curvebus-bench-mqtt" --port "$port")
      [ "$sys" = mosquitto-tls ] && bench_cmd+=(--tls --cafile "$tmp/ca.crt")
      ;;
    zmq-proxy-curve | zmq-proxy-plain)
      local plain=()
      [ "$sys" = zmq-proxy-plain ] && plain=(--plain)
      rm -f "$tmp/proxy.info"
      "$build/bench/curvebus-bench-zmq-proxy" --serve "$tmp/proxy.info" "${plain[@]}" \
        >>"$tmp/zmq-proxy.log" 2>&1 &
      server_pid=$!
      local _
      for _ in $(seq 100); do [ -s "$tmp/proxy.info" ] && break; sleep 0.1; done
      [ -s "$tmp/proxy.info" ] || { server_failed "$sys" "$tmp/zmq-proxy.log"; return 1; }
      bench_cmd=("$build/bench/curvebus-bench-zmq-client" --info "$tmp/proxy.info" "${plain[@]}")
      ;;
    *)
      echo "servers: unknown system $sys" >&2
      return 1
      ;;
  esac
  bench_cmd+=(--server-pid "$server_pid")
}

harness_name() {
  case $1 in
    mosquitto) echo mosquitto-qos0 ;;
    mosquitto-tls) echo mosquitto-qos0-tls ;;
    *) echo "$1" ;;
  esac
}

server_failed() {
  echo "servers: $1 did not come up; its log:" >&2
  tail -5 "$2" >&2 || true
  server_stop
}

server_stop() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  local _
  for _ in $(seq 50); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

server_versions() {
  local v
  v="curvebus $("$build/broker/curvebus-broker" --version 2>/dev/null | awk '{print $2}')"
  v+=" (${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')})"
  v+=", nats-server $(nats-server --version 2>/dev/null | awk '{print $2}')"
  v+=", mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')"
  v+=", libzmq $(dpkg-query -W -f='${Version}' libzmq5 2>/dev/null || echo '?')"
  v+=", OpenSSL $(dpkg-query -W -f='${Version}' openssl 2>/dev/null || echo '?')"
  echo "$v"
}
