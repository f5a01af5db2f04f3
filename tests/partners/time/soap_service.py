#!/usr/bin/env python3
"""A student's SOAP time service, written with spyne from the course statement.

The 2024-25 statement asks for "a web service in Python" that gives the date and time
as `dd/mm/yyyy hh:mm:ss`. Students named the operation `get_time`, `get_datetime` or
`get_current_datetime`, and some declared an input part the operation does not use
(a dummy argument), which spyne validates: a request without it gets a SOAP Fault.

Command line:
    python3 soap_service.py --port P --operation NAME [--dummy] [--host ADDR]
        [--tns NAMESPACE] [--fixed "01/02/2003 04:05:06"] [--timeout SECONDS]

    --operation: get_time, get_datetime or get_current_datetime (the one operation).
    --dummy: the operation declares one mandatory string input part `dummy`
    (minOccurs=1, not nillable, at least one character); lxml
    validation answers a Fault (soap11env:Client.SchemaValidationError) to a call
    without it.
    --port 0 picks a free port. Once bound it prints `listening <port>` on stdout
    (flushed). --fixed makes the operation return that string. Every request's
    operation and dummy value are printed as `call <operation> dummy=<value>` on
    stdout. SIGTERM exits 0.

Needs: python3 -m pip install spyne lxml
"""
import argparse
import signal
import sys
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne import Application, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

OPERATIONS = ("get_time", "get_datetime", "get_current_datetime")
# The dummy input part: required, not nil, at least one character.
DUMMY = Unicode(min_occurs=1, nillable=False, min_len=1)


def now(fixed):
    return fixed if fixed is not None else time.strftime("%d/%m/%Y %H:%M:%S")


def service_class(operation, dummy, fixed):
    """A spyne service with the one operation, named `operation`."""
    if dummy:
        @rpc(DUMMY, _returns=Unicode, _operation_name=operation)
        def call(ctx, dummy):
            print("call %s dummy=%s" % (operation, dummy), flush=True)
            return now(fixed)
    else:
        @rpc(_returns=Unicode, _operation_name=operation)
        def call(ctx):
            print("call %s dummy=None" % operation, flush=True)
            return now(fixed)
    return type("TimeService", (ServiceBase,), {operation: call})


def main():
    p = argparse.ArgumentParser(description="SOAP time service (spyne), statement style")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--operation", choices=OPERATIONS, required=True)
    p.add_argument("--dummy", action="store_true")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tns", default="http://sd.example/time")
    p.add_argument("--fixed", default=None)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()

    application = Application(
        [service_class(args.operation, args.dummy, args.fixed)],
        tns=args.tns,
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )

    class Handler(WSGIRequestHandler):
        timeout = args.timeout  # every read and write of a request

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
