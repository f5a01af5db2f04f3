#!/usr/bin/env bash
# Issue 22's "done when": `make test` passes N times in a row (default 5) on a fresh
# clone of this repository, while two CPU-bound loops run and a `make run` holds
# the default ports (9090, 8000, 9091, 8080). One line per run (pass/fail,
# duration), then a summary; exits 1 when a run failed.
#
#   scripts/soak-test.sh [N]        KEEP=1 keeps the clone (its target/test-output.txt)
#
# As in CI (.ci/run): the 2,000-connection tests need descriptors; set
# PEERDEX_REQUIRE_SYSTEM_TESTS=1 to make a skipped system test a failure.
set -u
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
N=${1:-5}
# The rpcbind tests need a portmapper, as in CI; without one every one of them fails
# (PEERDEX_REQUIRE_SYSTEM_TESTS=1) or skips, and the soak would say nothing about them.
if ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    echo "soak: no portmapper on 127.0.0.1:111: start one first (as root: rpcbind -w)"
    exit 1
fi
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel) || exit 1
work=$(mktemp -d /tmp/peerdex-soak.XXXXXX)
git clone -q "$repo" "$work/peerdex" || exit 1
cd "$work/peerdex" || exit 1
# The dependencies of this checkout's build, so the clone does not download them.
[ -d "$repo/target" ] && cp -a "$repo/target" . 2>/dev/null

bg=()
cleanup() {
    for pid in "${bg[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A make run on the default ports, in a process group of its own.
make -s release >/dev/null 2>&1 || { echo "soak: make release failed"; exit 1; }
setsid make -s run RUN_DIR="$work/run" > "$work/make-run.out" 2>&1 < /dev/null &
bg+=($!)
for _ in $(seq 1 300); do grep -q "peerdex is running" "$work/make-run.out" && break; sleep 0.2; done
if grep -q "peerdex is running" "$work/make-run.out"; then
    echo "soak: make run holds the default ports (pid ${bg[0]})"
else
    echo "soak: the background make run did not start (ports taken?):"; sed 's/^/  /' "$work/make-run.out"
fi
# Two CPU-bound loops.
for _ in 1 2; do setsid yes > /dev/null & bg+=($!); done

passed=0
for i in $(seq 1 "$N"); do
    start=$(date +%s)
    if make test > "$work/run-$i.log" 2>&1; then result=pass; passed=$((passed + 1)); else result=FAIL; fi
    took=$(( $(date +%s) - start ))
    echo "run $i/$N: $result in ${took}s"
    if [ "$result" = FAIL ]; then
        tail -n 15 "$work/run-$i.log" | sed 's/^/    /'
        cp "$work/run-$i.log" "/tmp/peerdex-soak-run-$i.log" && echo "    (log: /tmp/peerdex-soak-run-$i.log)"
    fi
done
echo "soak: $passed of $N runs passed"
[ "$passed" = "$N" ]
