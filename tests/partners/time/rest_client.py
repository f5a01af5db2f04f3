#!/usr/bin/env python3
"""A student's REST time client (urllib), as the course's Python client asks a
REST time service before every request.

Usage: python3 rest_client.py URL text|json [--accept]

    text: the body is the DATETIME (a `GET /fecha` service).
    json: the body is a JSON object and its "datetime" field is the DATETIME
          (a `GET /datetime` service).
    --accept: send `Accept: application/json` (otherwise no Accept header but
          urllib's default).
Prints the DATETIME and exits 0 when it is `dd/mm/YYYY HH:MM:SS`; exits 1 (reason on
stderr) on an HTTP error, a timeout or a wrong answer. Needs only the standard library.
"""
import json
import sys
import urllib.request
from datetime import datetime


def main():
    args = [a for a in sys.argv[1:] if a != "--accept"]
    if len(args) != 2 or args[1] not in ("text", "json"):
        print(__doc__, file=sys.stderr)
        return 1
    url, kind = args
    req = urllib.request.Request(url)
    if "--accept" in sys.argv:
        req.add_header("Accept", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read(4096).decode("utf-8")
    answer = json.loads(body)["datetime"] if kind == "json" else body.strip()
    datetime.strptime(answer, "%d/%m/%Y %H:%M:%S")
    print(answer)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # HTTP errors, timeouts, bad JSON, a wrong format
        print("REST call failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
