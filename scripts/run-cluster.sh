#!/usr/bin/env bash
# The script behind `make run-cluster`: `make run` with two index servers sharing
# one registry in Redis (`--store`). Starts redis-server (AOF, appendfsync always,
# in RUN_DIR/redis), the ONC-RPC logger, the time service and two index servers,
# prints what a newcomer needs, and stops everything on Ctrl+C or SIGTERM. When a
# component dies on its own, the others are stopped and the script exits 1 naming
# it. Clients may use either server: both see every change.
#
# Settings (environment, or make variables of the same name):
#   PEERDEX      the binary (default target/release/peerdex)
#   PORT, PORT_B the two index servers (9090, 9092)
#   HTTP_PORT, HTTP_PORT_B  their dashboards (8080, 8081; empty: off)
#   REDIS_PORT   redis-server's port, on 127.0.0.1 (6390)
#   TIME_PORT    time service port (8000)      LOGGER_PORT  logger port (9091)
#   PROGRAM      logger RPC program number (0x20000001)
#   STATEMENT    course statement year (2024)
#   RUN_DIR      where Redis's files, audit log, spools and logs go (./run-cluster)
#   ADVERTISE    address the servers report for clients on this machine (unset)
#   FRESH        1: start with an empty registry (removes RUN_DIR's redis, spools, audit log)
set -u

PEERDEX=${PEERDEX:-target/release/peerdex}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
PORT=${PORT:-9090}
PORT_B=${PORT_B:-9092}
HTTP_PORT=${HTTP_PORT-8080}
HTTP_PORT_B=${HTTP_PORT_B-8081}
REDIS_PORT=${REDIS_PORT:-6390}
TIME_PORT=${TIME_PORT:-8000}
LOGGER_PORT=${LOGGER_PORT:-9091}
PROGRAM=${PROGRAM:-0x20000001}
STATEMENT=${STATEMENT:-2024}
RUN_DIR=${RUN_DIR:-run-cluster}
ADVERTISE=${ADVERTISE:-}

MAKE_TARGET="make run-cluster"
COMPONENTS="redis-server, logger, time service, two index servers"
# shellcheck source=scripts/run-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/run-common.sh"

[ -x "$PEERDEX" ] || die "no peerdex binary at $PEERDEX (build it with 'make release')"
command -v "$REDIS_SERVER" >/dev/null ||
    die "no $REDIS_SERVER on the PATH (Debian: apt-get install redis-server)"

conflicts=()
suggest=()
for spec in "PORT=$PORT:index server" "PORT_B=$PORT_B:second index server" \
            "REDIS_PORT=$REDIS_PORT:redis-server" "TIME_PORT=$TIME_PORT:time service" \
            "LOGGER_PORT=$LOGGER_PORT:logger" ${HTTP_PORT:+"HTTP_PORT=$HTTP_PORT:dashboard"} \
            ${HTTP_PORT_B:+"HTTP_PORT_B=$HTTP_PORT_B:second dashboard"}; do
    var=${spec%%:*}; what=${spec#*:}; port=${var#*=}
    if tcp_taken "$port" || { [ "${var%%=*}" = LOGGER_PORT ] && udp_taken "$port"; }; then
        conflicts+=("$var ($what) is in use")
        suggest+=("${var%%=*}=$((port + 100))")
    fi
done
mkdir -p "$RUN_DIR" || die "cannot create $RUN_DIR"
exec 9>>"$RUN_DIR/.lock" || die "cannot open $RUN_DIR/.lock"
if ! flock -n 9; then
    conflicts+=("RUN_DIR=$RUN_DIR is in use by another make run-cluster")
    suggest+=("RUN_DIR=${RUN_DIR%/}2")
fi
if [ "${#conflicts[@]}" -gt 0 ]; then
    msg=$(printf '%s, ' "${conflicts[@]}")
    die "${msg%, }: stop the other one, or pick others, e.g. make run-cluster ${suggest[*]}"
fi
if [ -n "${FRESH:-}" ] && [ "${FRESH:-}" != 0 ]; then
    rm -rf "$RUN_DIR/redis" "$RUN_DIR"/spool-* "$RUN_DIR/audit.jsonl"
    echo "make run-cluster: FRESH=1: empty registry (removed $RUN_DIR/redis, spools and audit log)"
fi
mkdir -p "$RUN_DIR/redis" || die "cannot create $RUN_DIR/redis"
AUDIT="$RUN_DIR/audit.jsonl"
trap 'stop 0' INT TERM
for log in logger time server-a server-b; do : > "$RUN_DIR/$log.out"; done

# What an acknowledged change needs to survive a crash of Redis: every write of
# the AOF on disk before the reply.
# Its own log goes to RUN_DIR/redis/redis.log, not to this terminal.
start_program redis "redis-server" "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 \
    --dir "$RUN_DIR/redis" --appendonly yes --appendfsync always --save "" \
    --logfile redis.log
# Ready once it answers PING (a bash TCP connection: no client needed).
redis_ready() {
    for _ in $(seq 1 100); do
        kill -0 "${pids[0]}" 2>/dev/null || return 1
        if { exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"; } 2>/dev/null; then
            printf 'PING\r\n' >&3
            local reply=
            read -r -t 1 reply <&3
            exec 3<&-
            [ "${reply%$'\r'}" = "+PONG" ] && return 0
        fi
        sleep 0.1
    done
    return 1
}
redis_ready || stop_failed=redis-server
if [ -z "${stop_failed:-}" ]; then
    start logger "logger" logger --port "$LOGGER_PORT" --program "$PROGRAM" --audit "$AUDIT"
    wait_for "${pids[1]}" "l> init logger" "$RUN_DIR/logger.out" || stop_failed=logger
fi
if [ -z "${stop_failed:-}" ]; then
    start time "time service" time --port "$TIME_PORT"
    wait_for "${pids[2]}" "time service on" "$RUN_DIR/time.out" || stop_failed="time service"
fi
n=3
for spec in "a:$PORT:$HTTP_PORT" "b:$PORT_B:$HTTP_PORT_B"; do
    [ -n "${stop_failed:-}" ] && break
    IFS=: read -r id port http <<<"$spec"
    args=(server -p "$port" --statement "$STATEMENT" --store "redis://127.0.0.1:$REDIS_PORT"
          --logger "127.0.0.1:$LOGGER_PORT" --program "$PROGRAM" --spool "$RUN_DIR/spool-$id")
    [ -n "$ADVERTISE" ] && args+=(--advertise "$ADVERTISE")
    [ -n "$http" ] && args+=(--http "$http")
    start "server-$id" "index server $id" "${args[@]}"
    wait_for "${pids[$n]}" "s> init server" "$RUN_DIR/server-$id.out" || stop_failed="index server $id"
    n=$((n + 1))
done
if [ -n "${stop_failed:-}" ]; then
    echo "make run-cluster: the $stop_failed did not start (see the message above)" >&2
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait 2>/dev/null
    exit 1
fi

PEERDEX_ABS=$(cd "$(dirname "$PEERDEX")" && pwd)/$(basename "$PEERDEX")
host=$(sed -n 's/^s> init server \(.*\):[0-9]*$/\1/p' "$RUN_DIR/server-a.out" | head -n1)
dashboards="off (HTTP_PORT is empty)"
[ -n "$HTTP_PORT" ] && dashboards="http://${host:-127.0.0.1}:$HTTP_PORT/"
[ -n "$HTTP_PORT_B" ] && dashboards="$dashboards  http://${host:-127.0.0.1}:$HTTP_PORT_B/"
cat <<INFO

================================================================================
 peerdex is running: two index servers on one Redis. Ctrl+C stops everything.

 index servers  ${host:-127.0.0.1}:$PORT and ${host:-127.0.0.1}:$PORT_B   (statement $STATEMENT; either one: they share the registry)
 redis          redis://127.0.0.1:$REDIS_PORT   (AOF, appendfsync always, in $RUN_DIR/redis)
 time service   http://127.0.0.1:$TIME_PORT/
 dashboards     $dashboards
 audit logger   program $PROGRAM, port $LOGGER_PORT (tcp and udp)
 audit log      $AUDIT   (each server ships the records of the requests it answered)

 Start clients in other terminals (one per user), each sharing a folder of its
 own, half of them on each server:

   mkdir -p ~/peerdex-share
   $PEERDEX_ABS client -s 127.0.0.1 -p $PORT --time-url http://127.0.0.1:$TIME_PORT/ --share ~/peerdex-share
   $PEERDEX_ABS client -s 127.0.0.1 -p $PORT_B --time-url http://127.0.0.1:$TIME_PORT/ --share ~/peerdex-share-2

 then type HELP. A user registered through one server is listed by the other.
================================================================================

INFO

watch_components
