#!/usr/bin/env bash
# The script behind `make run`: starts the whole service side of peerdex in this
# terminal -- the ONC-RPC logger, the time service and the index server pointed at
# that logger -- prints what a newcomer needs to start clients, and stops all three
# on Ctrl+C (SIGINT) or SIGTERM, leaving no process behind. When a component dies
# on its own, the others are stopped and the script exits 1 naming it.
#
# Settings (environment, or make variables of the same name):
#   PEERDEX      the binary (default target/release/peerdex)
#   PORT         index server port (9090)      TIME_PORT    time service port (8000)
#   LOGGER_PORT  logger port, TCP and UDP (9091)
#   HTTP_PORT    the index server's live dashboard (8080; empty: off)
#   PROGRAM      logger RPC program number (0x20000001)
#   STATEMENT    course statement year, 2024 (2023-24) or 2025 (2024-25) (2024)
#   RUN_DIR      where the audit log, spool and registry data go (./run)
#   ADVERTISE    address the server reports for clients on this machine (unset)
#   FRESH        1: start with an empty registry (removes RUN_DIR's data, spool, audit log)
set -u

PEERDEX=${PEERDEX:-target/release/peerdex}
PORT=${PORT:-9090}
TIME_PORT=${TIME_PORT:-8000}
LOGGER_PORT=${LOGGER_PORT:-9091}
HTTP_PORT=${HTTP_PORT-8080}
PROGRAM=${PROGRAM:-0x20000001}
STATEMENT=${STATEMENT:-2024}
RUN_DIR=${RUN_DIR:-run}
ADVERTISE=${ADVERTISE:-}

MAKE_TARGET="make run"
COMPONENTS="logger, time service, index server"
# shellcheck source=scripts/run-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/run-common.sh"

[ -x "$PEERDEX" ] || die "no peerdex binary at $PEERDEX (build it with 'make release')"

# Every conflict is named up front, all in one message, in make terms: each port
# taken (TCP, and UDP for the logger), the run folder held by another `make run`
# (the lock below), the registry locked by a server. Nothing has started yet.
conflicts=()
suggest=()
for spec in "PORT=$PORT:index server" "TIME_PORT=$TIME_PORT:time service" \
            "LOGGER_PORT=$LOGGER_PORT:logger" ${HTTP_PORT:+"HTTP_PORT=$HTTP_PORT:dashboard"}; do
    var=${spec%%:*}; what=${spec#*:}; port=${var#*=}
    if tcp_taken "$port" || { [ "${var%%=*}" = LOGGER_PORT ] && udp_taken "$port"; }; then
        conflicts+=("$var ($what) is in use")
        suggest+=("${var%%=*}=$((port + 100))")
    fi
done

# The logger's program number, when a live logger holds it with rpcbind (it
# answers a NULL call there); the logger itself refuses too.
if command -v rpcinfo >/dev/null && rpcinfo -T tcp 127.0.0.1 "$((PROGRAM))" 1 >/dev/null 2>&1; then
    conflicts+=("PROGRAM=$PROGRAM (logger program) is registered by a running logger")
    suggest+=("PROGRAM=$(printf '%#x' $((PROGRAM + 1)))")
fi

mkdir -p "$RUN_DIR" || die "cannot create $RUN_DIR"
# The run folder's lock, held (on fd 9) for this script's whole life: a second
# `make run` on the same RUN_DIR stops here, before it truncates or starts anything.
exec 9>>"$RUN_DIR/.lock" || die "cannot open $RUN_DIR/.lock"
run_dir_taken=
if ! flock -n 9; then
    run_dir_taken=1
elif [ -e "$RUN_DIR/data/lock" ] && ! flock -n "$RUN_DIR/data/lock" true; then
    # A server started by hand on this registry.
    run_dir_taken=1
fi
if [ -n "$run_dir_taken" ]; then
    conflicts+=("RUN_DIR=$RUN_DIR is in use by another make run")
    suggest+=("RUN_DIR=${RUN_DIR%/}2")
fi
if [ "${#conflicts[@]}" -gt 0 ]; then
    msg=$(printf '%s, ' "${conflicts[@]}")
    die "${msg%, }: stop the other one, or pick others, e.g. make run ${suggest[*]}"
fi

# With FRESH=1 (or after `make reset`) the registry starts empty: the lock is ours,
# so no other instance uses what is removed.
if [ -n "${FRESH:-}" ] && [ "${FRESH:-}" != 0 ]; then
    rm -rf "$RUN_DIR/data" "$RUN_DIR/spool" "$RUN_DIR/audit.jsonl"
    echo "make run: FRESH=1: empty registry (removed $RUN_DIR/data, spool and audit log)"
fi
AUDIT="$RUN_DIR/audit.jsonl"

trap 'stop 0' INT TERM

# Ours alone now (the lock above): last run's output goes.
: > "$RUN_DIR/logger.out"; : > "$RUN_DIR/time.out"; : > "$RUN_DIR/server.out"

start logger "logger" logger --port "$LOGGER_PORT" --program "$PROGRAM" --audit "$AUDIT"
wait_for "${pids[0]}" "l> init logger" "$RUN_DIR/logger.out" || { stop_failed=logger; }
if [ -z "${stop_failed:-}" ]; then
    start time "time service" time --port "$TIME_PORT"
    wait_for "${pids[1]}" "time service on" "$RUN_DIR/time.out" || stop_failed="time service"
fi
if [ -z "${stop_failed:-}" ]; then
    server_args=(server -p "$PORT" --explain --statement "$STATEMENT" --logger "127.0.0.1:$LOGGER_PORT" --program "$PROGRAM"
                 --spool "$RUN_DIR/spool" --data-dir "$RUN_DIR/data")
    [ -n "$ADVERTISE" ] && server_args+=(--advertise "$ADVERTISE")
    [ -n "$HTTP_PORT" ] && server_args+=(--http "$HTTP_PORT")
    start server "index server" "${server_args[@]}"
    wait_for "${pids[2]}" "s> init server" "$RUN_DIR/server.out" || stop_failed="index server"
fi
if [ -n "${stop_failed:-}" ]; then
    echo "make run: the $stop_failed did not start (see the message above)" >&2
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait 2>/dev/null
    exit 1
fi

# An absolute path, so the client command works when pasted in any folder.
PEERDEX_ABS=$(cd "$(dirname "$PEERDEX")" && pwd)/$(basename "$PEERDEX")
host=$(sed -n 's/^s> init server \(.*\):[0-9]*$/\1/p' "$RUN_DIR/server.out" | head -n1)
if grep -q "registered program" "$RUN_DIR/logger.out"; then
    pmap="registered with rpcbind: see it with 'rpcinfo -p' and 'rpcinfo -t localhost $((PROGRAM))'"
else
    pmap="no rpcbind running: not registered (install and start rpcbind to see it with rpcinfo)"
fi
# Clients of a lab on the 2024-25 statement send absolute paths: they follow the year too.
client_year=""
[ "$STATEMENT" != 2024 ] && client_year=" --statement $STATEMENT"
dashboard="off (HTTP_PORT is empty)"
[ -n "$HTTP_PORT" ] && dashboard="http://${host:-127.0.0.1}:$HTTP_PORT/   (open it in a browser)"
cat <<INFO

================================================================================
 peerdex is running. Ctrl+C stops everything.

 index server   ${host:-127.0.0.1}:$PORT   (statement $STATEMENT)
 time service   http://127.0.0.1:$TIME_PORT/
 dashboard      $dashboard
 audit logger   program $PROGRAM, port $LOGGER_PORT (tcp and udp)
                $pmap
 audit log      $AUDIT   (registry data in $RUN_DIR/data)

 Start a client in another terminal (one per user), each sharing a folder of
 its own (not this checkout):

   mkdir -p ~/peerdex-share
   $PEERDEX_ABS client -s 127.0.0.1 -p $PORT --time-url http://127.0.0.1:$TIME_PORT/ --share ~/peerdex-share$client_year

 then type HELP. On another machine use -s ${host:-<this host>} --time-url
 http://${host:-<this host>}:$TIME_PORT/; for its users to download from clients on
 this machine, start with 'make run ADVERTISE=<this machine's LAN address>'.
================================================================================

INFO

watch_components
