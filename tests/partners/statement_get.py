#!/usr/bin/env python3
"""A GET_FILE downloader written to the course statement (not peerdex).

Imitates the download half of a student's Python client: it sends
`GET_FILE\\0<remote>\\0`, reads one result byte and, on 0, stores everything up to the
peer's close as the file. It expects no size: a peer that sends one (the slides'
variant) gets the size text and its NUL written at the start of the file, which is the
bug this partner exposes.

Command line:
    python3 statement_get.py HOST PORT REMOTE_NAME OUT_PATH [--timeout SECONDS]

Output and exit codes:
    result 0, content stored up to the close   prints `ok <bytes written>`, exit 0
    result N != 0                              prints `code N`, exit 1 (no OUT_PATH)
    connect error, timeout, reset, close before the result byte
                                               prints `error <reason>` on stderr,
                                               exit 2 (no OUT_PATH)
    SIGTERM                                    removes a partial OUT_PATH, exit 3
Every read has a timeout (default 10 s).
"""
import argparse
import os
import signal
import socket
import sys


def main():
    p = argparse.ArgumentParser(description="GET_FILE downloader written to the statement")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("remote")
    p.add_argument("out")
    p.add_argument("--timeout", type=float, default=10.0)
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
            total = 0
            state["writing"] = True
            with open(args.out, "wb") as f:
                while True:
                    data = s.recv(64 * 1024)
                    if not data:
                        break
                    f.write(data)
                    total += len(data)
            state["writing"] = False
            print("ok %d" % total, flush=True)
            return 0
    except OSError as e:
        cleanup()
        print("error %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
