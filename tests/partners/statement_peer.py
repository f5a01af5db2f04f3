#!/usr/bin/env python3
"""A peer listener written to the course statement (not peerdex).

Imitates the Python peer a student writes for the lab's GET_FILE part: a listening
socket, a thread per connection, NUL-terminated strings in, one result byte out, then
the file's content and the close. It exists so peerdex's tests can prove interop with
peers that were never built from peerdex's code.

Command line:
    python3 statement_peer.py --port P --dir DIR [--host ADDR]
        [--dialect statement|slides|2025|one] [--unknown close|two|die]
        [--rate BYTES_PER_SEC] [--die-after BYTES [--die-how rst|close]]
        [--timeout SECONDS]

    --port 0 picks a free port. Once bound it prints `listening <port>` on stdout
    (flushed). Each request is reported on stderr as `request <op> <name> -> <what>`.

Per connection it reads two NUL-terminated strings, the op and the file name.
  GET_FILE, DIR/name a regular file:
      statement  byte 0, the content, close            (PROTOCOL.md section 2)
      slides     byte 0, size as decimal text + NUL, the content, close
      2025       the same bytes as slides: the 2024-25 statement's reply (section
                 4.6, step 5a); a 2024-25 downloader asks by absolute path
      one        byte 1, the content, close            (a published reference peer)
  GET_FILE, no such regular file: byte 1, close (every dialect).
  Any other op (e.g. GET_FILE_RANGE): --unknown close (default) closes without a byte;
      --unknown two sends byte 2 and closes; --unknown die sends byte 2 and the whole
      listener exits (status 1), as a student peer does that then fails on its own
      closed socket: one unknown request takes it off the network.
  The name is joined to DIR as given (an absolute name is used as it is), as a
  student's peer that opens the name it receives does.
--rate sends the content at about that many bytes per second. --die-after stops after
that many content bytes: `rst` (default) waits until the peer has acknowledged them
and resets the connection, `close` closes it normally (a silent truncation).
Every socket read and write has a timeout (--timeout, default 10 s). SIGTERM exits 0.
"""
import argparse
import fcntl
import os
import signal
import socket
import struct
import sys
import termios
import threading
import time

MAX_FIELD = 4096

# One report line at a time: print() writes the text and its newline separately, so
# two connections' threads could otherwise run their lines together.
REPORT_LOCK = threading.Lock()


def report(line):
    with REPORT_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


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


def wait_acked(conn, limit=2.0):
    """Wait (bounded) until every byte sent was acknowledged (SIOCOUTQ == 0)."""
    end = time.monotonic() + limit
    buf = bytearray(4)
    while time.monotonic() < end:
        fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, buf)
        if struct.unpack("i", buf)[0] == 0:
            return
        time.sleep(0.01)


def send_content(conn, path, args):
    """Send the file's bytes; returns False when --die-after cut the transfer."""
    chunk = 64 * 1024
    if args.rate:
        chunk = max(1, min(chunk, args.rate // 20))
    sent = 0
    with open(path, "rb") as f:
        while True:
            want = chunk
            if args.die_after is not None:
                want = min(want, args.die_after - sent)
                if want <= 0:
                    return False
            data = f.read(want)
            if not data:
                return True
            conn.sendall(data)
            sent += len(data)
            if args.rate:
                time.sleep(len(data) / args.rate)


def serve(conn, addr, args):
    what = "closed"
    op = name = None
    abort = False
    try:
        conn.settimeout(args.timeout)
        op = read_string(conn)
        name = read_string(conn) if op is not None else None
        if op is None or name is None:
            what = "incomplete request, closed"
        elif op != "GET_FILE":
            if args.unknown == "die":
                conn.sendall(b"\x02")
                conn.close()
                report("request %s %s -> unknown op, sent 2, dying" % (op, name))
                os._exit(1)
            if args.unknown == "two":
                conn.sendall(b"\x02")
                what = "unknown op, sent 2"
            else:
                what = "unknown op, closed"
            # End cleanly (FIN, not RST) although the request may have more fields
            # (GET_FILE_RANGE's offset) that were not read: stop writing, then let
            # the other side close first.
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(2)
            while conn.recv(4096):
                pass
        else:
            path = os.path.join(args.dir, name)
            if not os.path.isfile(path):
                conn.sendall(b"\x01")
                what = "no such file, sent 1"
            else:
                if args.dialect == "one":
                    conn.sendall(b"\x01")
                elif args.dialect in ("slides", "2025"):
                    conn.sendall(b"\x00" + str(os.path.getsize(path)).encode() + b"\0")
                else:
                    conn.sendall(b"\x00")
                if send_content(conn, path, args):
                    what = "sent %s" % args.dialect
                else:
                    what = "died after %d bytes (%s)" % (args.die_after, args.die_how)
                    if args.die_how == "rst":
                        wait_acked(conn)
                        abort = True
    except OSError as e:
        what = "error %s" % e
    finally:
        if abort:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        report("request %s %s -> %s" % (op, name, what))


def main():
    p = argparse.ArgumentParser(description="peer listener written to the course statement")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--dialect", choices=["statement", "slides", "2025", "one"], default="statement")
    p.add_argument("--unknown", choices=["close", "two", "die"], default="close")
    p.add_argument("--rate", type=int, default=0, help="bytes per second (0: full speed)")
    p.add_argument("--die-after", type=int, default=None, help="content bytes sent before the abort")
    p.add_argument("--die-how", choices=["rst", "close"], default="rst")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(128)
    print("listening %d" % srv.getsockname()[1], flush=True)
    try:
        while True:
            conn, addr = srv.accept()
            threading.Thread(target=serve, args=(conn, addr, args), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()


if __name__ == "__main__":
    main()
