# The pieces shared by scripts/run.sh (`make run`) and scripts/run-cluster.sh (`make
# run-cluster`): sourced, not run. The caller sets MAKE_TARGET (its name in messages),
# COMPONENTS (what `stop` names), PEERDEX and RUN_DIR first.

die() { echo "$MAKE_TARGET: $*" >&2; exit 1; }

# Whether a port is taken on this machine (TCP; UDP through ss when it is there).
tcp_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_taken() { command -v ss >/dev/null && ss -Huln "sport = :$1" 2>/dev/null | grep -q .; }

pids=()
names=()
# Stops every component and exits with $1 (0 after Ctrl+C, 1 after a crash).
stop() {
    local code=${1:-0}
    trap - INT TERM
    echo
    echo "stopping peerdex ($COMPONENTS)..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    # Give each a moment to stop cleanly (the logger unregisters from the
    # portmapper), then make sure nothing is left.
    for _ in $(seq 1 50); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    wait 2>/dev/null
    echo "stopped."
    exit "$code"
}

# Waits until a process prints a line matching $2 into log $3; fails if it exits.
wait_for() {
    local pid=$1 pattern=$2 log=$3
    for _ in $(seq 1 100); do
        grep -q -- "$pattern" "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Starts `$PEERDEX ARGS...` as component NAME (WHAT in messages); its stdout is shown
# in this terminal and kept in RUN_DIR/NAME.out, its stderr in RUN_DIR/NAME.err.
start() {
    local name=$1 what=$2; shift 2
    start_program "$name" "$what" "$PEERDEX" "$@"
}

# The same for any program.
start_program() {
    local name=$1 what=$2; shift 2
    "$@" > >(tee -i "$RUN_DIR/$name.out") 2> >(tee -i "$RUN_DIR/$name.err" >&2) &
    pids+=($!)
    names+=("$what (log $RUN_DIR/$name.err)")
}

# Runs until Ctrl+C, or until a component dies: then exits non-zero naming it.
watch_components() {
    while :; do
        for i in "${!pids[@]}"; do
            pid=${pids[$i]}
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid"
                status=$?
                if [ "$status" -gt 128 ]; then
                    how="was killed by signal $((status - 128))"
                else
                    how="exited with status $status"
                fi
                echo "$MAKE_TARGET: the ${names[$i]} $how; stopping the others" >&2
                stop 1
            fi
        done
        sleep 0.5
    done
}
