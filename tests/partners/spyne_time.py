#!/usr/bin/env python3
"""A SOAP-only time service as the course builds it with spyne (not peerdex).

Imitates the lab's time web service: one spyne service with one operation `get_time`
returning the date and time as the string `dd/mm/YYYY HH:MM:SS`, SOAP 1.1 in and out,
the WSDL at `/?wsdl`, served by wsgiref. It speaks no plain-text `GET /`.

Command line:
    python3 spyne_time.py --port P [--host ADDR] [--tns NAMESPACE]
        [--fixed "01/02/2003 04:05:06"] [--timeout SECONDS]

    --port 0 picks a free port. Once bound it prints `listening <port>` on stdout
    (flushed); wsgiref's request log goes to stderr. --fixed makes get_time always
    return that string (tests then look for it as the DATETIME the index server got).
    --tns is the target namespace (default http://time.example/soap). Reads time out
    after --timeout seconds (default 10). SIGTERM exits 0.

Needs: python3 -m pip install spyne lxml   (tested with spyne 2.14.0 on Python 3.11)
"""
import argparse
import signal
import sys
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne import Application, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

FIXED = None


class TimeService(ServiceBase):
    @rpc(_returns=Unicode)
    def get_time(ctx):
        if FIXED is not None:
            return FIXED
        return time.strftime("%d/%m/%Y %H:%M:%S")


def main():
    global FIXED
    p = argparse.ArgumentParser(description="SOAP-only time service built with spyne")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tns", default="http://time.example/soap")
    p.add_argument("--fixed", default=None, help="always return this DATETIME")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    FIXED = args.fixed

    application = Application(
        [TimeService],
        tns=args.tns,
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )

    class Handler(WSGIRequestHandler):
        timeout = args.timeout  # socket timeout of each request's reads and writes

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = make_server(args.host, args.port, WsgiApplication(application),
                         server_class=WSGIServer, handler_class=Handler)
    print("listening %d" % server.server_port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
