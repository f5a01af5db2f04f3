#!/usr/bin/env python3
"""A student's REST time service, written with python3's http.server from the
course statement ("a web service in Python" giving `dd/mm/yyyy hh:mm:ss`).

Two dialects seen in the 2024-25 year:
    --style text   GET /fecha     -> 200 text/plain, the DATETIME as the body
    --style json   GET /datetime  -> 200 application/json, {"datetime": "..."}
Any other path gets 404, any other method 501 (http.server's default).

Command line:
    python3 rest_service.py --port P --style text|json [--host ADDR]
        [--fixed "01/02/2003 04:05:06"] [--timeout SECONDS]

    --port 0 picks a free port. Once bound it prints `listening <port>` on stdout
    (flushed); every request is printed as `request <path>` on stdout. --fixed makes
    it always answer that string. Reads time out after --timeout seconds
    (default 10). SIGTERM exits 0. Needs only the standard library.
"""
import argparse
import json
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PATHS = {"text": "/fecha", "json": "/datetime"}


def main():
    p = argparse.ArgumentParser(description="REST time service, statement style")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--style", choices=sorted(PATHS), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--fixed", default=None)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        timeout = args.timeout  # every read and write of a request

        def do_GET(self):
            print("request %s" % self.path, flush=True)
            if self.path != PATHS[args.style]:
                self.send_error(404)
                return
            now = args.fixed or time.strftime("%d/%m/%Y %H:%M:%S")
            if args.style == "json":
                body = json.dumps({"datetime": now}).encode()
                kind = "application/json"
            else:
                body = now.encode()
                kind = "text/plain; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            sys.stderr.write("%s\n" % (fmt % a))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = HTTPServer((args.host, args.port), Handler)
    print("listening %d" % server.server_port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
