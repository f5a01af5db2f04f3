#!/usr/bin/env bash
# Builds an audit logger of the shape students write with rpcgen for the course statement
# ("logger: ONC-RPC, interface left to the students"; STATEMENTS.md lists what they chose:
# `LOG` taking one string or a struct of 3-4 strings in various orders, returning `void` or
# `int`, any program number, version 1). Written here from that list, not copied from any
# student project.
#
# Usage: build.sh OUTDIR PROGRAM PROCEDURE void|int FIELDS
#   PROGRAM    the program number (decimal or 0x hex), e.g. 0x31230000 or 99
#   PROCEDURE  the number of LOG in version 1, e.g. 1 or 2
#   void|int   LOG's result type
#   FIELDS     `string` for `LOG(string)`, else the struct's string fields in order,
#              separated by commas (e.g. `user,operation,datetime`)
#
# Writes OUTDIR/logger.x, rpcgen's outputs (header, XDR, client stub, and the server stub
# with rpcgen's usual main: pmap_unset, then UDP and TCP transports registered with rpcbind,
# then svc_run), and two programs:
#   OUTDIR/logger_server   no arguments. One stdout line (flushed) per LOG call:
#                          `LOG proc=P name=value | name=value ...` (`LOG proc=P string=value`
#                          for one string); one line `connection N port P to ADDR` each time a TCP
#                          connection is accepted (N counts them). SIGTERM/SIGINT unregister
#                          it from rpcbind and exit 0. It replies 0 (int) or nothing (void).
#   OUTDIR/logger_client HOST tcp|udp VALUE...
#                          one LOG call with the values in the fields' order (one VALUE for
#                          `string`); prints `result N` (int) or `done` (void) and exits 0,
#                          or exits 1 with clnt_perror's message on stderr (e.g. "Can't
#                          decode result").
# Needs rpcgen (rpcsvc-proto), gcc and libtirpc-dev; the server needs rpcbind running.
set -euo pipefail
if [ $# -ne 5 ]; then
    echo "usage: $0 OUTDIR PROGRAM PROCEDURE void|int FIELDS" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
out="$1" prog="$2" proc="$3" result="$4" fields="$5"
case "$result" in void|int) ;; *) echo "result type: void or int" >&2; exit 2 ;; esac
IFS=, read -r -a names <<< "$fields"
mkdir -p "$out"
cd "$out"

# ---- the interface ----
if [ "$fields" = string ]; then
    argtype=string
    {
        echo "program LOGGER_PROG {"
        echo "    version LOGGER_VERS { $result LOG(string) = $proc; } = 1;"
        echo "} = $prog;"
    } > logger.x
else
    argtype=log_entry
    {
        echo "struct log_entry {"
        for n in "${names[@]}"; do echo "    string $n<256>;"; done
        echo "};"
        echo "program LOGGER_PROG {"
        echo "    version LOGGER_VERS { $result LOG(log_entry) = $proc; } = 1;"
        echo "} = $prog;"
    } > logger.x
fi
rm -f logger.h logger_svc.c logger_clnt.c logger_xdr.c logger_server logger_client
rpcgen -h -o logger.h logger.x
rpcgen -s udp -s tcp -o logger_svc.c logger.x
rpcgen -c -o logger_xdr.c logger.x
rpcgen -l -o logger_clnt.c logger.x

# ---- the procedure (what a student writes beside rpcgen's stub) ----
if [ "$result" = int ]; then rtype="int"; else rtype="void"; fi
{
    echo '#include <stdio.h>'
    echo '#include "logger.h"'
    if [ "$argtype" = string ]; then
        echo "$rtype *log_1_svc(char **argp, struct svc_req *rqstp)"
    else
        echo "$rtype *log_1_svc(log_entry *argp, struct svc_req *rqstp)"
    fi
    echo '{'
    echo '    static int result; /* 0: stored. A void procedure returns any non-NULL pointer. */'
    echo '    (void) rqstp;'
    echo "    printf(\"LOG proc=%d\", $proc);"
    if [ "$argtype" = string ]; then
        echo '    printf(" string=%s", *argp);'
    else
        sep=" "
        for n in "${names[@]}"; do
            echo "    printf(\"${sep}$n=%s\", argp->$n);"
            sep=" | "
        done
    fi
    echo '    printf("\n");'
    echo '    fflush(stdout);'
    echo "    return ($rtype *) &result;"
    echo '}'
} > logger_proc.c

# ---- the client (a student's index server calls this before it answers) ----
nvalues=1
[ "$argtype" = string ] || nvalues=${#names[@]}
{
    echo '#include <stdio.h>'
    echo '#include "logger.h"'
    echo 'int main(int argc, char **argv)'
    echo '{'
    echo '    struct timeval tv = { 5, 0 };'
    echo "    if (argc != 3 + $nvalues) {"
    echo "        fprintf(stderr, \"usage: %s HOST tcp|udp VALUE x $nvalues\\n\", argv[0]);"
    echo '        return 2;'
    echo '    }'
    echo '    CLIENT *clnt = clnt_create(argv[1], LOGGER_PROG, LOGGER_VERS, argv[2]);'
    echo '    if (clnt == NULL) { clnt_pcreateerror(argv[1]); return 1; }'
    echo '    clnt_control(clnt, CLSET_TIMEOUT, (char *) &tv);'
    if [ "$argtype" = string ]; then
        echo '    char *arg = argv[3];'
    else
        echo '    log_entry arg;'
        i=3
        for n in "${names[@]}"; do echo "    arg.$n = argv[$i];"; i=$((i + 1)); done
    fi
    echo "    $rtype *r = log_1(&arg, clnt);"
    echo '    if (r == NULL) { clnt_perror(clnt, "LOG"); clnt_destroy(clnt); return 1; }'
    if [ "$result" = int ]; then
        echo '    printf("result %d\n", *r);'
    else
        echo '    printf("done\n");'
    fi
    echo '    clnt_destroy(clnt);'
    echo '    return 0;'
    echo '}'
} > logger_client.c

cp "$here/common.c" .
cflags=(-O2 -Wall -Wno-unused-variable -I. -I/usr/include/tirpc)
gcc "${cflags[@]}" -o logger_server logger_svc.c logger_xdr.c logger_proc.c common.c -ltirpc
gcc "${cflags[@]}" -o logger_client logger_clnt.c logger_xdr.c logger_client.c -ltirpc
