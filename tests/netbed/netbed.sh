#!/usr/bin/env bash
# The multi-host test bed: several "hosts" on this one machine, each a Linux network
# namespace, joined by veth pairs to a bridge that lives in a namespace of its own.
# Nothing here touches the machine's own interfaces, routes or namespaces: every link
# is created inside the bed's namespaces, and the 10.77.0.0/24 range exists only there.
#
#   netbed.sh up BED        create bed BED (a short tag, e.g. a test's pid)
#   netbed.sh down BED      remove it (idempotent; also kills what runs inside)
#   netbed.sh ns BED HOST   print the namespace name of HOST
#   netbed.sh ip HOST       print the address of HOST
#   netbed.sh cut BED HOST  take HOST's link down (the host drops off the network)
#   netbed.sh check         exit 0 when this machine can build a bed (root, ip netns)
#
# Hosts: server, logger, time, peer1, peer2, peer3; server2 and redis (several
# index servers on one Redis).
set -euo pipefail

HOSTS="server logger time peer1 peer2 peer3 server2 redis"

addr() {
    case "$1" in
        server) echo 10.77.0.10 ;;
        logger) echo 10.77.0.11 ;;
        time)   echo 10.77.0.12 ;;
        server2) echo 10.77.0.13 ;;
        redis)  echo 10.77.0.14 ;;
        peer1)  echo 10.77.0.21 ;;
        peer2)  echo 10.77.0.22 ;;
        peer3)  echo 10.77.0.23 ;;
        *) echo "netbed: unknown host $1" >&2; exit 2 ;;
    esac
}

ns() { echo "pdx-$1-$2"; }
sw() { echo "pdx-$1-sw"; }

up() {
    local bed=$1
    down "$bed" 2>/dev/null || true
    ip netns add "$(sw "$bed")"
    ip -n "$(sw "$bed")" link set lo up
    ip -n "$(sw "$bed")" link add br0 type bridge
    ip -n "$(sw "$bed")" link set br0 up
    for h in $HOSTS; do
        local n; n=$(ns "$bed" "$h")
        ip netns add "$n"
        ip -n "$n" link set lo up
        # Both ends are created inside the bed: the switch end stays in the switch
        # namespace, the host end goes straight to the host namespace.
        ip -n "$(sw "$bed")" link add "v-$h" type veth peer name eth0 netns "$n"
        ip -n "$(sw "$bed")" link set "v-$h" master br0 up
        ip -n "$n" addr add "$(addr "$h")/24" dev eth0
        ip -n "$n" link set eth0 up
    done
    # Wait until every host reaches the server (bridge ports take a moment).
    for _ in $(seq 1 50); do
        local ok=1
        for h in $HOSTS; do
            ip netns exec "$(ns "$bed" "$h")" ping -c1 -W1 "$(addr server)" >/dev/null 2>&1 || ok=0
        done
        [ "$ok" = 1 ] && return 0
        sleep 0.1
    done
    echo "netbed: hosts cannot reach each other" >&2
    return 1
}

down() {
    local bed=$1
    for h in $HOSTS; do
        local n; n=$(ns "$bed" "$h")
        if ip netns list | grep -qw "$n"; then
            # Kill whatever still runs inside, then remove the namespace.
            for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$n" 2>/dev/null || true
        fi
    done
    ip netns del "$(sw "$bed")" 2>/dev/null || true
}

check() {
    [ "$(id -u)" = 0 ] || { echo "netbed: needs root"; exit 1; }
    command -v ip >/dev/null || { echo "netbed: needs iproute2 (ip)"; exit 1; }
    command -v ping >/dev/null || { echo "netbed: needs ping (iputils-ping)"; exit 1; }
    local probe="pdx-check-$$"
    ip netns add "$probe" 2>/dev/null || { echo "netbed: cannot create network namespaces"; exit 1; }
    ip netns del "$probe"
}

case "${1:-}" in
    up) up "$2" ;;
    down) down "$2" ;;
    ns) ns "$2" "$3" ;;
    ip) addr "$2" ;;
    cut) ip -n "$(sw "$2")" link set "v-$3" down ;;
    check) check ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac
