#!/usr/bin/env python3
"""The index half of a student's client (not peerdex), of either year.

Written from ../shared/STATEMENTS.md, as a student's Python client sends one
operation: a connection, the operation, the DATETIME, the user and the arguments as
NUL-terminated strings, then one result byte and, on 0, what the operation lists.

Command line:
    python3 statement_client.py HOST PORT [--statement 2024|2025] [--ip IP]
        [--datetime "dd/mm/yyyy hh:mm:ss"] [--timeout SECONDS] OP USER [ARGS...]
    python3 statement_client.py HOST PORT [options] --batch < REQUESTS

    --statement  how LIST_CONTENT is read: 2024 a name and a description per file,
                 2025 the name only. Default 2024.
    --ip         CONNECT sends this IP address as a field before the port (the
                 dialect of clients that declare their address).
    --datetime   the DATETIME sent (default 17/12/2014 13:20:35).

--batch reads one request per line of stdin (OP, USER and ARGS separated by tabs),
sends each on a connection of its own, as the shell of a student's client does, and
ends each one's output with a line `.`.

Prints `code N`, then one line per entry of LIST_USERS (`user<TAB>ip<TAB>port`) or
LIST_CONTENT (`name<TAB>description`, or `name`), then, if the server sent more bytes
than the year's layout has before its close, `trailing N` (what a student's client
would have taken for the next reply, or ignored). Exits 0 when a reply was read;
1 with `error <reason>` on stderr when the connection failed, timed out, or closed
before the reply was complete. Standard library only.
"""
import argparse
import socket
import sys

MAX_FIELD = 256
MAX_TRAILING = 65536


class Closed(Exception):
    pass


def read_string(conn):
    data = bytearray()
    while True:
        b = conn.recv(1)
        if not b:
            raise Closed("closed inside a string")
        if b == b"\0":
            return data.decode("utf-8", "replace")
        data += b
        if len(data) > MAX_FIELD:
            raise Closed("string over %d bytes" % MAX_FIELD)


def main():
    p = argparse.ArgumentParser(description="index client, course statement style")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--statement", choices=("2024", "2025"), default="2024")
    p.add_argument("--ip", default=None)
    p.add_argument("--datetime", default="17/12/2014 13:20:35")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--batch", action="store_true")
    p.add_argument("request", nargs="*", help="OP USER [ARGS...]")
    a = p.parse_args()
    if not a.batch:
        if len(a.request) < 2:
            p.error("give OP USER [ARGS...], or --batch")
        return one(a, a.request)
    for line in sys.stdin:
        request = line.rstrip("\n").split("\t")
        if len(request) < 2:
            p.error("a request line needs OP<TAB>USER: %r" % line)
        one(a, request)
        print(".", flush=True)
    return 0


def one(a, request):
    """Sends one request on its own connection and prints the reply."""
    op, user, args = request[0], request[1], request[2:]
    fields = [op, a.datetime, user]
    if op == "CONNECT" and a.ip is not None:
        fields.append(a.ip)
    fields += args
    conn = socket.create_connection((a.host, a.port), timeout=a.timeout)
    with conn:
        conn.sendall(b"".join(f.encode() + b"\0" for f in fields))
        code = conn.recv(1)
        if not code:
            raise Closed("closed before the result byte")
        code = code[0]
        print("code %d" % code)
        if code == 0 and op in ("LIST_USERS", "LIST_CONTENT"):
            count = int(read_string(conn))
            per = 3 if op == "LIST_USERS" else (2 if a.statement == "2024" else 1)
            for _ in range(count):
                print("\t".join(read_string(conn) for _ in range(per)))
        trailing = 0
        while trailing <= MAX_TRAILING:
            chunk = conn.recv(4096)
            if not chunk:
                break
            trailing += len(chunk)
        if trailing:
            print("trailing %d" % trailing)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, Closed, ValueError) as e:
        print("error %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
