#!/usr/bin/env python3
"""An index server written to the course statement (not peerdex), of either year.

Written from ../shared/STATEMENTS.md, as a student writes the part-1 server: a
listening socket, a thread per connection, one request per connection read as
NUL-terminated strings (the operation, the DATETIME, the user, the arguments), one
result code back, then the lists, then the close.

Command line:
    python3 statement_server.py --port P [--host ADDR] [--statement 2024|2025]
        [--codes byte|text|int|int-le] [--without-requester] [--timeout SECONDS]

    --statement  the LIST_CONTENT layout: 2024 sends name and description per file,
                 2025 (the 2024-25 statement) the name only. Default 2024.
    --codes      how the result code travels: byte (the statement: one byte), text
                 (the digit and a NUL, "0\\0"), int (a 4-byte integer in network
                 order, as `send(sock, &htonl(code), 4)`), int-le (a 4-byte integer
                 in the machine's little-endian order, as `send(sock, &code, 4)`).
    --without-requester  LIST_USERS leaves out the user who asks.
    --port 0 picks a free port. Once bound it prints `listening <port>` on stdout
    (flushed), then one line per request: `request OP DATETIME USER ARGS...`
    (fields separated by tabs) and `reply OP CODE`.

Operations and codes (the statement's):
    REGISTER                0 ok, 1 user exists, 2 other
    UNREGISTER              0 ok, 1 no such user, 2 other
    CONNECT PORT            0 ok, 1 no such user, 2 already connected, 3 other
    DISCONNECT              0 ok, 1 no such user, 2 not connected, 3 other
    PUBLISH FILE DESC       0 ok, 1 no such user, 2 not connected, 3 published, 4 other
    DELETE FILE             0 ok, 1 no such user, 2 not connected, 3 not published, 4 other
    LIST_USERS              0 + count + (name, ip, port) per connected user; 1, 2, 3
    LIST_CONTENT TARGET     0 + count + per file (name, desc) or (name); 1, 2, 3 no
                            such target, 4 other
The IP of CONNECT is the connection's own address. An unknown operation, a field
over 256 bytes or a request cut short gets no reply: the connection is closed. Every
read has a timeout (--timeout, default 10 s). SIGTERM exits 0. Standard library only.
"""
import argparse
import signal
import socket
import struct
import sys
import threading

MAX_FIELD = 256

# Arguments after DATETIME and USER, per operation.
ARGS = {
    "REGISTER": 0,
    "UNREGISTER": 0,
    "CONNECT": 1,
    "DISCONNECT": 0,
    "PUBLISH": 2,
    "DELETE": 1,
    "LIST_USERS": 0,
    "LIST_CONTENT": 1,
}


def read_string(conn):
    """One NUL-terminated string, or None if the peer closed first or sent too much."""
    data = bytearray()
    while True:
        b = conn.recv(1)
        if not b:
            return None
        if b == b"\0":
            return data.decode("utf-8", "replace")
        data += b
        if len(data) > MAX_FIELD:
            return None


def encode_code(code, style):
    if style == "byte":
        return bytes([code])
    if style == "text":
        return str(code).encode() + b"\0"
    if style == "int":
        return struct.pack(">i", code)
    return struct.pack("<i", code)


def strings(*values):
    return b"".join(str(v).encode() + b"\0" for v in values)


class Index:
    """users: name -> {"connected": (ip, port) or None, "files": {name: desc}}."""

    def __init__(self, args):
        self.args = args
        self.users = {}
        self.lock = threading.Lock()

    def handle(self, op, user, rest, ip):
        """The result code and the bytes that follow it."""
        with self.lock:
            u = self.users.get(user)
            if op == "REGISTER":
                if u is not None:
                    return 1, b""
                self.users[user] = {"connected": None, "files": {}}
                return 0, b""
            if op == "UNREGISTER":
                if u is None:
                    return 1, b""
                del self.users[user]
                return 0, b""
            if u is None:
                return 1, b""
            if op == "CONNECT":
                if u["connected"] is not None:
                    return 2, b""
                if not rest[0].isdigit() or not 0 < int(rest[0]) < 65536:
                    return 3, b""
                u["connected"] = (ip, rest[0])
                return 0, b""
            if u["connected"] is None:
                return 2, b""
            if op == "DISCONNECT":
                u["connected"] = None
                return 0, b""
            if op == "PUBLISH":
                if rest[0] in u["files"]:
                    return 3, b""
                u["files"][rest[0]] = rest[1]
                return 0, b""
            if op == "DELETE":
                if rest[0] not in u["files"]:
                    return 3, b""
                del u["files"][rest[0]]
                return 0, b""
            if op == "LIST_USERS":
                rows = [
                    (name, v["connected"][0], v["connected"][1])
                    for name, v in sorted(self.users.items())
                    if v["connected"] is not None
                    and not (self.args.without_requester and name == user)
                ]
                out = strings(len(rows))
                for row in rows:
                    out += strings(*row)
                return 0, out
            # LIST_CONTENT
            target = self.users.get(rest[0])
            if target is None:
                return 3, b""
            files = sorted(target["files"].items())
            out = strings(len(files))
            for name, desc in files:
                out += strings(name, desc) if self.args.statement == "2024" else strings(name)
            return 0, out


def serve(conn, addr, index, args):
    with conn:
        conn.settimeout(args.timeout)
        try:
            op = read_string(conn)
            if op not in ARGS:
                return
            fields = [read_string(conn) for _ in range(2 + ARGS[op])]
            if any(f is None for f in fields):
                return
            datetime, user, rest = fields[0], fields[1], fields[2:]
            print("request\t" + "\t".join([op] + fields), flush=True)
            code, body = index.handle(op, user, rest, addr[0])
            print("reply\t%s\t%d" % (op, code), flush=True)
            conn.sendall(encode_code(code, args.codes) + (body if code == 0 else b""))
        except OSError as e:
            print("connection error: %s" % e, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description="index server, course statement style")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--statement", choices=("2024", "2025"), default="2024")
    p.add_argument("--codes", choices=("byte", "text", "int", "int-le"), default="byte")
    p.add_argument("--without-requester", action="store_true")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    index = Index(args)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(64)
    print("listening %d" % srv.getsockname()[1], flush=True)
    while True:
        conn, addr = srv.accept()
        threading.Thread(target=serve, args=(conn, addr, index, args), daemon=True).start()


if __name__ == "__main__":
    main()
