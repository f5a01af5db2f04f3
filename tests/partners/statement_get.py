#!/usr/bin/env python3
"""A GET_FILE downloader written to the course statement (not peerdex).

Imitates the download half of a student's Python client: it sends
`GET_FILE\\0<remote>\\0`, reads one result byte and, on 0, stores everything up to the
peer's close as the file. With --statement 2024 (the default) it expects no size: a
peer that sends one (the slides' variant) gets the size text and its NUL written at
the start of the file, which is the bug this partner exposes. With --statement 2025
it reads the size string the 2024-25 statement puts after the 0 (section 4.6, step 5a:
decimal digits and a NUL, at most 20 digits), then exactly that many bytes: a reply
without it, or with another count of bytes before the close, is an error.

Command line:
    python3 statement_get.py HOST PORT REMOTE_NAME OUT_PATH [--timeout SECONDS]
        [--statement 2024|2025]

Output and exit codes:
    result 0, content stored up to the close   prints `ok <bytes written>`, exit 0
    result N != 0                              prints `code N`, exit 1 (no OUT_PATH)
    connect error, timeout, reset, close before the result byte, (2025) no size
    string or a count that differs from it     prints `error <reason>` on stderr,
                                               exit 2 (no OUT_PATH)
    SIGTERM                                    removes a partial OUT_PATH, exit 3
Every read has a timeout (default 10 s).
"""
import argparse
import os
import signal
import socket
import sys


def read_size(s):
    """The 2024-25 statement's size string: decimal digits and a NUL."""
    digits = b""
    while True:
        b = s.recv(1)
        if not b:
            raise OSError("closed in the size string")
        if b == b"\0":
            break
        if not b.isdigit() or len(digits) >= 20:
            raise OSError("no size string after the result byte")
        digits += b
    if not digits:
        raise OSError("empty size string")
    return int(digits)


def main():
    p = argparse.ArgumentParser(description="GET_FILE downloader written to the statement")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("remote")
    p.add_argument("out")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--statement", choices=["2024", "2025"], default="2024")
    args = p.parse_args()

    state = {"writing": False}

    def cleanup():
        if state["writing"]:
            try:
                os.unlink(args.out)
            except OSError:
                pass

    def on_term(*_):
        cleanup()
        os._exit(3)

    signal.signal(signal.SIGTERM, on_term)
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout) as s:
            s.settimeout(args.timeout)
            s.sendall(b"GET_FILE\0" + args.remote.encode() + b"\0")
            code = s.recv(1)
            if not code:
                print("error closed before the result byte", file=sys.stderr)
                return 2
            if code[0] != 0:
                print("code %d" % code[0], flush=True)
                return 1
            size = read_size(s) if args.statement == "2025" else None
            total = 0
            state["writing"] = True
            with open(args.out, "wb") as f:
                while True:
                    data = s.recv(64 * 1024)
                    if not data:
                        break
                    f.write(data)
                    total += len(data)
            if size is not None and total != size:
                raise OSError("size %d announced, %d bytes received" % (size, total))
            state["writing"] = False
            print("ok %d" % total, flush=True)
            return 0
    except OSError as e:
        cleanup()
        print("error %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
