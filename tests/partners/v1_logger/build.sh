#!/usr/bin/env bash
# Builds the audit logger a student writes for the lab (not peerdex): the one-procedure
# rpcgen interface `void LOG(string)` in version 1 only, rpcgen's C server stub with
# its usual main (registers the program with rpcbind on UDP and TCP, then svc_run), and
# a hand-written procedure that prints each string as a line on stdout (flushed).
#
# Usage: build.sh OUTDIR PROGRAM_NUMBER      (PROGRAM_NUMBER decimal or 0x hex)
# Writes OUTDIR/logv1.x, the rpcgen outputs, and two programs:
#   OUTDIR/logv1_server   no arguments; prints one line per LOG call; SIGTERM/SIGINT
#                         unregister it from rpcbind and exit 0
#   OUTDIR/logv1_client HOST tcp|udp LINE...   calls LOG(LINE) per LINE, prints `sent <n>`
# Needs rpcgen (rpcsvc-proto), gcc and libtirpc-dev; the server needs rpcbind running.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 OUTDIR PROGRAM_NUMBER" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
prog="$2"
mkdir -p "$out"
cd "$out"
cat > logv1.x <<X
program LOGGER_PROG { version LOGGER_V1 { void LOG(string) = 1; } = 1; } = $prog;
X
rm -f logv1.h logv1_svc.c logv1_clnt.c logv1_xdr.c logv1_server logv1_client
rpcgen -h -o logv1.h logv1.x
rpcgen -s udp -s tcp -o logv1_svc.c logv1.x
rpcgen -c -o logv1_xdr.c logv1.x
rpcgen -l -o logv1_clnt.c logv1.x
cp "$here/logv1_server_proc.c" "$here/logv1_client.c" .
cflags=(-O2 -w -I. -I/usr/include/tirpc)
gcc "${cflags[@]}" -o logv1_server logv1_svc.c logv1_xdr.c logv1_server_proc.c -ltirpc
gcc "${cflags[@]}" -o logv1_client logv1_clnt.c logv1_xdr.c logv1_client.c -ltirpc
